"""Paper records and the readers that produce them. Imports nothing else of sciembed."""

from .errors import InvalidRecordError
from .readers import ReadReport, detect_format, iter_raw_records, load_papers, read_papers
from .records import DEFAULT_TEXT_FIELDS, ID_FIELD_CANDIDATES, Paper, as_paper, normalize_whitespace, paper_from_dict

__all__ = [
    "DEFAULT_TEXT_FIELDS",
    "ID_FIELD_CANDIDATES",
    "InvalidRecordError",
    "Paper",
    "ReadReport",
    "as_paper",
    "detect_format",
    "iter_raw_records",
    "load_papers",
    "normalize_whitespace",
    "paper_from_dict",
    "read_papers",
]
