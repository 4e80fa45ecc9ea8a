"""Paper records and the readers that produce them. Imports nothing else of sciembed."""

from .errors import InputFileError, InvalidRecordError
from .readers import (
    ReadReport,
    detect_format,
    has_at_least,
    iter_parsed,
    iter_raw_records,
    iter_records,
    load_papers,
    read_papers,
)
from .records import (
    DEFAULT_TEXT_FIELDS,
    ID_FIELD_CANDIDATES,
    KNOWN_TEXT_FIELDS,
    Paper,
    as_field_list,
    as_item_list,
    as_paper,
    as_paper_list,
    is_missing,
    normalize_whitespace,
    paper_from_dict,
    resolve_id,
    text_value,
)

__all__ = [
    "DEFAULT_TEXT_FIELDS",
    "ID_FIELD_CANDIDATES",
    "InputFileError",
    "InvalidRecordError",
    "KNOWN_TEXT_FIELDS",
    "Paper",
    "ReadReport",
    "as_field_list",
    "as_paper",
    "as_item_list",
    "as_paper_list",
    "detect_format",
    "has_at_least",
    "is_missing",
    "iter_parsed",
    "iter_raw_records",
    "iter_records",
    "load_papers",
    "normalize_whitespace",
    "paper_from_dict",
    "read_papers",
    "resolve_id",
    "text_value",
]
