"""One strict reader of JSON request bodies and their integer fields, for every JSON API
(the volunteer API, where it is django-ninja's body parser and its integer fields' reader:
labelapp/views/api.py; and the console's). Everything it refuses raises ``BadJson`` with a
message that says what is wrong; views answer it with a 400.

Refused: bodies that are not UTF-8 JSON, NaN / Infinity / -Infinity (not JSON, though
Python's json module reads them), nesting deeper than MAX_DEPTH (checked before parsing,
so 50,000 brackets cost one linear scan, not a RecursionError), a top level that is not an
object. Integers: a JSON integer or a string of digits; ``true`` / ``1.5`` / ``"1e3"`` are
not integers, and values outside the field's range are refused, never clamped silently.
"""

from __future__ import annotations

import json
import re

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from labelapp.errors import InvalidInput

MAX_DEPTH = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"-?[0-9]{1,19}")


class BadJson(InvalidInput, ValueError):
    """A body or field the API refuses (answered with a 400)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _refuse_constant(name: str):
    raise BadJson(f"the body is not valid JSON ({name} is not a JSON number)")


def _too_deep(raw: bytes, limit: int) -> bool:
    """True when brackets outside strings nest deeper than ``limit`` (one pass)."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # "
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def parse_json_object(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> dict:
    """A JSON object from ``raw``, strictly (see the module docstring)."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not raw.strip():
        return {}
    if _too_deep(raw, max_depth):
        raise BadJson(f"the body is nested deeper than {max_depth} levels")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except BadJson:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadJson("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadJson("the body must be a JSON object")
    return data


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object body (``BadJson`` when it is not one)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BadJson("the body is too large") from None
    return parse_json_object(raw)


def strict_int(
    value, name: str, *, low: int = INT64_MIN, high: int = INT64_MAX, default=None
) -> int | None:
    """``value`` as an int in [low, high]: a JSON integer or a string of digits. None or ""
    gives ``default``. Booleans, floats (even 2.0) and anything else raise BadJson."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadJson(f"{name} must be an integer, not {type(value).__name__} {value!r}"[:200])
    if isinstance(value, str):
        if not _INT_TEXT.fullmatch(value):
            raise BadJson(f"{name} must be an integer, not {value[:40]!r}")
        value = int(value)
    if not low <= value <= high:
        raise BadJson(f"{name} must be between {low} and {high}")
    return value


def strict_int_list(value, name: str, *, max_items: int) -> list[int]:
    """A list of 64-bit integers (JSON array, or a comma-separated string from a query)."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > max_items:
        raise BadJson(f"{name} must be a list of at most {max_items} integers")
    return [strict_int(i, f"{name}[{k}]") for k, i in enumerate(items)]
