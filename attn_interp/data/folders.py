"""The folder layout of the ``local`` loader: one text file per document, label = folder name.

As 20 Newsgroups (``20news-bydate-train/LABEL/FILE``) and aclImdb (``train/pos/0_9.txt``) ship:

* ``ROOT/train/LABEL/*`` and ``ROOT/test/LABEL/*``, optionally ``ROOT/validation/LABEL/*`` (or
  ``ROOT/dev/LABEL/*``): the given splits;
* otherwise ``ROOT/LABEL/*``: one pool, split by the caller.

Every regular file of a label folder is one document (any name or extension; names starting with
"." are ignored, and so are files directly in ``ROOT`` or ``ROOT/train``, like aclImdb's
``labeledBow.feat``). Files are read in label-folder order, then file-name order, both sorted.
"""

from __future__ import annotations

from pathlib import Path

from attn_interp.data.readers import (
    BadRowPolicy,
    DataFormatError,
    RawRows,
    bad_bytes,
    decode,
    has_bad_bytes,
    normalize_label,
)

__all__ = ["read_label_folders", "read_folder_layout"]

_VALIDATION_NAMES = ("validation", "dev")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def read_label_folders(
    folder: Path, *, encoding: str = "utf-8", bad_rows: str = "error", skip: frozenset = frozenset()
) -> RawRows:
    """The documents of ``folder/LABEL/FILE``, label folders named in `skip` left out."""
    rows = RawRows(str(folder))
    bad = BadRowPolicy(bad_rows, rows)
    labels = sorted(
        d for d in folder.iterdir() if d.is_dir() and _visible(d) and d.name not in skip
    )
    if not labels:
        raise DataFormatError(
            f"{folder}: no label folders; expected {folder}/LABEL/FILE, one text file per document"
        )
    for label_dir in labels:
        files = sorted(f for f in label_dir.iterdir() if f.is_file() and _visible(f))
        for i, file in enumerate(files, start=1):
            text = decode(file.read_bytes(), encoding)
            if has_bad_bytes(text):
                bad_bytes(bad, i, encoding, where=str(file))
                continue
            rows.add(text, normalize_label(label_dir.name), i, file=str(file))
    return rows


def read_folder_layout(
    root: Path, *, encoding: str = "utf-8", bad_rows: str = "error", skip: str = ""
) -> dict[str, RawRows] | RawRows:
    """Split name -> rows for the split layout (no "validation" key when none is given), or the
    rows of the whole pool for ``ROOT/LABEL/*``; `skip` is a comma-separated list of folders."""
    if not root.is_dir():
        raise FileNotFoundError(f"local_dir {root} is not a folder")
    kw = dict(encoding=encoding, bad_rows=bad_rows, skip=frozenset(filter(None, skip.split(","))))
    has = {name: (root / name).is_dir() for name in ("train", "test", *_VALIDATION_NAMES)}
    if not (has["train"] or has["test"]):
        return read_label_folders(root, **kw)
    if not (has["train"] and has["test"]):
        missing = "test" if has["train"] else "train"
        raise DataFormatError(
            f"{root} has a {'train' if has['train'] else 'test'} folder but no {missing} folder; "
            f"give both ROOT/train/LABEL/* and ROOT/test/LABEL/*, or only ROOT/LABEL/* folders"
        )
    parts = {name: read_label_folders(root / name, **kw) for name in ("train", "test")}
    for name in _VALIDATION_NAMES:
        if has[name]:
            parts["validation"] = read_label_folders(root / name, **kw)
            break
    return parts
