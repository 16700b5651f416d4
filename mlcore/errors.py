"""One error tree for mlcore. Library code raises these (never ``SystemExit``); command-line
wrappers turn them into a message and an exit status, the platform into its own errors."""

from __future__ import annotations


class MlcoreError(Exception):
    """Root of every error mlcore raises on purpose."""


class DataError(MlcoreError, ValueError):
    """Input data that cannot be used: a survey file, a label file, a catalogue."""


class LabelsError(DataError):
    """A label source that cannot be read or does not fit the survey."""
