"""The one CSV writer of the platform: cells safe to open in a spreadsheet.

CSV injection (OWASP): a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is run as a formula by Excel / LibreOffice / Google Sheets (``=HYPERLINK(``,
``@SUM(``, DDE ``=cmd|...``). Every CSV the platform writes goes through :class:`SafeWriter`,
which prefixes such *text* cells with a single quote ``'`` (shown as text, not run).

Numbers are left as they are: a cell written from an int / float / numpy number (``-1.5``,
``-1e-17``) is a numeric literal, which spreadsheets read as a number, never a formula; and
a text cell that is exactly a plain decimal number (``"-3"``, ``"+2.5e3"``) is left alone for
the same reason. Everything else starting with a trigger character is neutralised, so
``"-1+2"`` or ``"-2+3+cmd|' /C calc'!A0"`` become text. :func:`restore_cell` undoes it (the
round trip of a value through :class:`SafeWriter` and :func:`restore_cell` is exact).
FITS / VOTable exports carry the values untouched: only CSV needs this.
"""

from __future__ import annotations

import csv
import numbers
import re
from collections.abc import Iterable

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PREFIX = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def safe_cell(value):
    """``value`` as a CSV cell that no spreadsheet runs as a formula (see the module doc)."""
    if value is None or isinstance(value, numbers.Number):  # bool, int, float, numpy numbers
        return value
    text = str(value)
    if text.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text):
        return PREFIX + text
    if text.startswith(PREFIX) and text[1:2] and (text[1:2] in TRIGGERS or text[1:2] == PREFIX):
        return PREFIX + text  # a leading quote of its own survives the round trip
    return text


def restore_cell(text: str) -> str:
    """The original text of a cell written by :func:`safe_cell` (read back from the CSV)."""
    if text.startswith(PREFIX) and text[1:2] and (text[1:2] in TRIGGERS or text[1:2] == PREFIX):
        return text[1:]
    return text


class SafeWriter:
    """``csv.writer`` whose every cell passes :func:`safe_cell`."""

    def __init__(self, fh, **kwargs):
        self._writer = csv.writer(fh, **kwargs)
        # csv quotes a field only for the characters of its own lineterminator: with "\n" a
        # bare carriage return went out unquoted and broke the row for every reader. Rows
        # holding one are written with every field quoted.
        self._quoted = csv.writer(fh, **{**kwargs, "quoting": csv.QUOTE_ALL})

    def writerow(self, row: Iterable):
        cells = [safe_cell(v) for v in row]
        if any(isinstance(c, str) and ("\r" in c or "\n" in c) for c in cells):
            return self._quoted.writerow(cells)
        return self._writer.writerow(cells)

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)
