"""Errors raised for bad input: each names the file and the record."""

from __future__ import annotations


class InvalidRecordError(ValueError):
    """A record that cannot be used; the message names the file, the line and what is wrong."""

    def __init__(self, path: str, line: int | None, reason: str, record_id: str | None = None):
        self.path = path
        self.line = line
        self.reason = reason
        self.record_id = record_id
        where = f"{path}:{line}" if line is not None else str(path)
        if record_id is not None:
            where += f" (id {record_id!r})"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # to cross a process boundary (the embedding job's reading process) intact
        return type(self), (self.path, self.line, self.reason, self.record_id)


class InputFileError(InvalidRecordError):
    """The file itself cannot be read (from ``line`` on): never skipped, even with ``skip_invalid``."""
