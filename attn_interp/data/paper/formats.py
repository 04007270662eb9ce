"""Streaming readers for the public file formats of the paper's datasets (docs/datasets.md).

Every reader yields ``(line, text, raw_label)`` rows (1-based line, or position in a JSON array)
and reports bad rows through a `attn_interp.data.readers.BadRowPolicy` (raise naming file and line,
or count and skip). Texts keep their content; multi-field texts are joined with a newline (a
sentence boundary for the splitter) and literal ``\\n`` escapes become newlines. Blank texts are
yielded as they are; callers decide what to do with them.

Formats:

* `read_zhang_csv`: Zhang et al. (2015) CSVs, no header: class index, then 1-3 text fields.
* `read_original_tsv`: the original code's TSVs (header; columns ``category`` and ``tokens``).
* `read_imdb_json`: one JSON array of objects with ``rating`` and ``review``.
* `read_tang`: Tang et al. (2015) ``user<TAB><TAB>product<TAB><TAB>rating<TAB><TAB>text`` with
  sentences separated by ``<sssss>``.
* `read_yelp_json`: Yelp Open Dataset ``review.json`` (JSON lines with ``stars`` and ``text``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from attn_interp.data.readers import BadRowPolicy, DataFormatError, load_json_array

__all__ = [
    "Row",
    "join_fields",
    "numeric_label",
    "read_zhang_csv",
    "read_original_tsv",
    "read_imdb_json",
    "read_tang",
    "read_yelp_json",
]

Row = tuple[int, str, str]
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_LITERAL_NEWLINE = re.compile(r"\\n")
_SSSSS = re.compile(r"\s*<sssss>\s*")


def join_fields(fields: list[str]) -> str:
    """Non-blank fields, literal ``\\n`` turned into newlines, joined by a newline."""
    parts = [_LITERAL_NEWLINE.sub("\n", f).strip() for f in fields]
    return "\n".join(p for p in parts if p)


def numeric_label(value: object) -> str:
    """``5``, ``5.0``, ``"5"`` and ``" 5 "`` -> ``"5"``; other values -> their stripped text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        f = float(text)
    except ValueError:
        return text
    return str(int(f)) if math.isfinite(f) and f.is_integer() else text


def _open_text(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def read_zhang_csv(path: str | Path, num_fields: int, bad: BadRowPolicy) -> Iterator[Row]:
    """Rows of a Zhang et al. CSV with `num_fields` columns: class index, then text fields."""
    path = Path(path)
    csv.field_size_limit(2**31 - 1)
    with _open_text(path) as f:
        reader = csv.reader(f)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                bad("malformed_row", reader.line_num, f"CSV error ({e})")
                continue
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != num_fields:
                bad(
                    "malformed_row",
                    line,
                    f"{len(fields)} CSV fields, this dataset's Zhang et al. CSV has {num_fields} "
                    "(class index, then text fields); is this file from another dataset?",
                )
                continue
            if any(_SURROGATE.search(x) for x in fields):
                bad("bad_utf8", line, "invalid UTF-8 bytes")
                continue
            yield line, join_fields(fields[1:]), fields[0].strip()


def read_original_tsv(path: str | Path, bad: BadRowPolicy) -> Iterator[Row]:
    """Rows of an original-code TSV: header row, columns ``category`` and ``tokens`` in any order."""
    path = Path(path)
    with _open_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        names = [h.strip() for h in header]
        missing = [c for c in ("category", "tokens") if c not in names]
        if missing:
            raise DataFormatError(
                f"{path}:1: the header {names} lacks the column(s) {missing}; the original code's "
                "TSVs have a header row naming 'category' (label) and 'tokens' (text)"
            )
        li, ti = names.index("category"), names.index("tokens")
        for line, raw in enumerate(f, start=2):
            raw = raw.rstrip("\r\n")
            if not raw.strip():
                continue
            fields = raw.split("\t")
            if len(fields) != len(header):
                bad(
                    "malformed_row",
                    line,
                    f"{len(fields)} tab-separated fields, the header has {len(header)}",
                )
                continue
            if _SURROGATE.search(fields[ti]) or _SURROGATE.search(fields[li]):
                bad("bad_utf8", line, "invalid UTF-8 bytes")
                continue
            yield line, join_fields([fields[ti]]), numeric_label(fields[li])


def _object_row(obj, line: int, text_key: str, label_key: str, bad: BadRowPolicy) -> Row | None:
    if not isinstance(obj, dict):
        bad("malformed_row", line, f"expected a JSON object, got {type(obj).__name__}")
        return None
    missing = [k for k in (text_key, label_key) if k not in obj]
    if missing:
        bad("malformed_row", line, f"missing field(s) {missing}")
        return None
    text, label = obj[text_key], obj[label_key]
    if text is None:
        text = ""
    if not isinstance(text, str) or label is None or isinstance(label, (dict, list)):
        bad("malformed_row", line, f"{text_key!r} must be a string and {label_key!r} a number")
        return None
    return line, join_fields([text]), numeric_label(label)


def read_imdb_json(path: str | Path, bad: BadRowPolicy) -> Iterator[Row]:
    """Rows of IMDB ``data.json``: one array of objects with ``rating`` (1-10) and ``review``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    data = load_json_array(path, "data.json")
    for i, obj in enumerate(data, start=1):  # "line" = position in the array
        row = _object_row(obj, i, "review", "rating", bad)
        if row is not None:
            yield row


def read_tang(path: str | Path, bad: BadRowPolicy) -> Iterator[Row]:
    """Rows of a Tang et al. (2015) file; ``<sssss>`` sentence marks become newlines."""
    path = Path(path)
    with _open_text(path) as f:
        for line, raw in enumerate(f, start=1):
            raw = raw.rstrip("\r\n")
            if not raw.strip():
                continue
            fields = raw.split("\t\t", 3)
            if len(fields) != 4:
                bad(
                    "malformed_row",
                    line,
                    f"{len(fields)} fields separated by a double tab, expected 4 "
                    "(user, product, rating, text)",
                )
                continue
            if _SURROGATE.search(raw):
                bad("bad_utf8", line, "invalid UTF-8 bytes")
                continue
            text = _SSSSS.sub("\n", fields[3]).strip()
            yield line, text, numeric_label(fields[2])


def read_yelp_json(path: str | Path, bad: BadRowPolicy) -> Iterator[Row]:
    """Rows of a Yelp ``review.json`` (one JSON object per line, ``stars`` and ``text``)."""
    path = Path(path)
    with _open_text(path) as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if _SURROGATE.search(raw):
                bad("bad_utf8", line, "invalid UTF-8 bytes")
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                bad("malformed_row", line, f"invalid JSON ({e.msg})")
                continue
            row = _object_row(obj, line, "text", "stars", bad)
            if row is not None:
                yield row
