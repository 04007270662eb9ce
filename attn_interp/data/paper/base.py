"""Shared TFDS builder for the paper's four datasets over user-supplied files (a manual dir).

A concrete builder (``<name>/<name>_dataset_builder.py``, class ``Builder``) lists its class names,
the file layouts it accepts (`SourceLayout`, tried in order) and its builder configs (a
`SplitRecipe` each: ``paper`` with the paper's counts, ``dummy`` scaled down for the fixtures).
Preparation:

1. find the first layout whose files are all in the manual dir (or, with ``allow_download=True``,
   fetch the builder's documented archive through the TFDS download manager);
2. pass 1 over the files to be split: read every row, map its label to a class id, note blank rows
   and (if the recipe filters train+dev) the tokens per sentence; `assign_splits` /
   `split_traindev` choose the rows of each split;
3. pass 2 per split: stream the files again and write the chosen rows (file order kept).

Files that are already split (the original code's train/dev/test TSVs) are written as they are.
Blank texts are never written; they, and bad rows skipped with ``bad_rows="skip"``, are counted in
``info.metadata["skipped"]``. ``info.metadata`` also records ``source_format``, ``source`` and
``split_recipe``.
"""

from __future__ import annotations

import collections
import dataclasses
import html
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attn_interp.data.paper.formats import Row
from attn_interp.data.paper.splits import SPLIT_NAMES, SplitRecipe, assign_splits, split_traindev
from attn_interp.data.readers import BadRowPolicy, RawRows
from attn_interp.data.sentences import tokenize_sentences
from attn_interp.data.tfds_source import manual_dir_of, text_label_info

__all__ = ["SourceLayout", "PaperBuilderConfig", "PaperBuilder", "ROLES"]

#: File roles: "pool" rows are re-split; "traindev" rows are split into train / validation;
#: "train" / "validation" / "test" files are used as they are.
ROLES = ("pool", "traindev", "train", "validation", "test")

Reader = Callable[[Path, BadRowPolicy], Iterator[Row]]


@dataclasses.dataclass(frozen=True)
class SourceLayout:
    """One accepted set of files in the manual dir.

    format: name recorded in ``info.metadata["source_format"]``, e.g. ``"zhang_csv"``.
    files: ``(role, file name or glob)`` pairs; each glob must match exactly one file.
    reader: ``(path, bad_row_policy) -> rows``.
    description: one line for error messages (where the files come from).
    """

    format: str
    files: tuple[tuple[str, str], ...]
    reader: Reader
    description: str

    def __post_init__(self):
        roles = {r for r, _ in self.files}
        ok = ({"pool"}, {"traindev", "test"}, {"train", "validation", "test"})
        if roles not in ok:
            raise ValueError(f"layout {self.format!r}: roles {sorted(roles)} are not one of {ok}")

    def find(self, folder: Path) -> list[tuple[str, Path]] | None:
        """``(role, path)`` per file if all are in `folder`, else None; raises if a glob is ambiguous."""
        found = []
        for role, pattern in self.files:
            hits = sorted(p for p in folder.glob(pattern) if p.is_file())
            if not hits:
                return None
            if len(hits) > 1:
                raise FileNotFoundError(
                    f"{folder} holds several files matching {pattern!r} ({[p.name for p in hits]}); "
                    "keep one dataset's files per manual dir"
                )
            found.append((role, hits[0]))
        return found

    def describe(self) -> str:
        return f"{', '.join(p for _, p in self.files)}  ({self.description})"


@dataclasses.dataclass(eq=False)
class PaperBuilderConfig(tfds.core.BuilderConfig):
    """A builder config carrying the split recipe (counts, fractions, seed, train+dev filter)."""

    recipe: SplitRecipe = dataclasses.field(default_factory=SplitRecipe)


class PaperBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the four paper builders (see the module docstring); not a dataset itself."""

    CLASS_NAMES: tuple[str, ...] = ()
    LAYOUTS: tuple[SourceLayout, ...] = ()
    HOMEPAGE: str = ""
    #: Optional ``(url, folder inside the archive)`` fetched with ``allow_download=True``.
    DOWNLOAD: tuple[str, str] | None = None

    def __init__(self, *, bad_rows: str = "error", allow_download: bool = False, **kwargs):
        """`bad_rows`: "error" or "skip" for malformed rows and unknown labels.

        `allow_download`: when the manual dir holds no accepted layout, fetch `DOWNLOAD` through the
        TFDS download manager (only builders that document such an address; never in tests).
        """
        if bad_rows not in ("error", "skip"):
            raise ValueError(f"bad_rows must be 'error' or 'skip', got {bad_rows!r}")
        self._bad_rows = bad_rows
        self._allow_download = allow_download
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ info
    def _info(self) -> tfds.core.DatasetInfo:
        return text_label_info(self, self.CLASS_NAMES, self.HOMEPAGE)

    @property
    def recipe(self) -> SplitRecipe:
        return self.builder_config.recipe

    # ------------------------------------------------------------------ labels
    def label_id(self, raw: str) -> int | None:
        """Class id of a raw label: a class name, or a number 1..C (class index / rating / stars)."""
        names = self.CLASS_NAMES
        if raw in names:
            return names.index(raw)
        unescaped = html.unescape(raw)
        if unescaped in names:
            return names.index(unescaped)
        try:
            v = int(raw)
        except ValueError:
            return None
        return v - 1 if 1 <= v <= len(names) else None

    # ------------------------------------------------------------------ files
    def manual_instructions(self, folder: Path | None) -> str:
        where = f"the manual dir {folder}" if folder else "a folder passed as the manual dir"
        lines = [f"Put one of these sets of files in {where}:"]
        lines += [f"  * {layout.describe()}" for layout in self.LAYOUTS]
        lines.append(
            "and pass that folder as manual_dir (flag --manual_dir, or "
            "tfds.download.DownloadConfig(manual_dir=...))."
        )
        if self.DOWNLOAD:
            lines.append(f"Or build with allow_download=True to fetch {self.DOWNLOAD[0]}.")
        return "\n".join(lines)

    def _locate(self, dl_manager) -> tuple[SourceLayout, list[tuple[str, Path]], str]:
        folder = manual_dir_of(dl_manager)
        if folder is not None:
            for layout in self.LAYOUTS:
                found = layout.find(folder)
                if found:
                    return layout, found, f"manual_dir:{folder}"
        if self._allow_download and self.DOWNLOAD:
            url, inner = self.DOWNLOAD
            root = Path(dl_manager.download_and_extract(url)) / inner
            for layout in self.LAYOUTS:
                found = layout.find(root)
                if found:
                    return layout, found, f"download:{url}"
        have = sorted(p.name for p in folder.iterdir()) if folder and folder.is_dir() else []
        raise FileNotFoundError(
            f"{self.name}: no usable files"
            + (f" ({folder} holds {have})" if folder else " (no manual dir given)")
            + ".\n"
            + self.manual_instructions(folder)
        )

    def _read(self, layout: SourceLayout, path: Path, policy: str, counts: collections.Counter):
        """Rows with a valid label: ``(line, text, label_id)``; bad rows counted in `counts`."""
        bad = BadRowPolicy(policy, RawRows(str(path), skipped=counts))
        for line, text, raw in layout.reader(path, bad):
            label = self.label_id(raw)
            if label is None:
                bad(
                    "unknown_label",
                    line,
                    f"label {raw!r} is not one of the {len(self.CLASS_NAMES)} classes "
                    f"({', '.join(self.CLASS_NAMES)}) nor a number 1..{len(self.CLASS_NAMES)}",
                )
                continue
            yield line, text, label

    # ------------------------------------------------------------------ splits
    def _split_generators(self, dl_manager):
        layout, files, source = self._locate(dl_manager)
        meta = self.info.metadata
        meta["source_format"] = layout.format
        meta["source"] = source
        meta["files"] = [f"{role}:{path.name}" for role, path in files]
        meta["split_recipe"] = dataclasses.asdict(self.recipe)
        self._skipped: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        roles = {r for r, _ in files}
        if roles == {"train", "validation", "test"}:
            by_role = dict(files)
            return {s: self._given(layout, by_role[s], s) for s in SPLIT_NAMES}
        to_split = [(i, p) for i, (r, p) in enumerate(files) if r in ("pool", "traindev")]
        plan = self._plan(layout, to_split, pool=roles == {"pool"})
        out = {s: self._planned(layout, to_split, plan, k) for k, s in enumerate(SPLIT_NAMES)}
        if roles == {"traindev", "test"}:
            out["test"] = self._given(layout, dict(files)["test"], "test")
        return out

    def _plan(self, layout, to_split, pool: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """Pass 1: per file, (lines of rows with a valid label, split id per such row)."""
        lines, labels, nonempty, eligible, file_of = [], [], [], [], []
        counts = self._skipped["unsplit"]
        check = self.recipe.has_traindev_filter
        for fi, path in to_split:
            for line, text, label in self._read(layout, path, self._bad_rows, counts):
                lines.append(line)
                labels.append(label)
                file_of.append(fi)
                blank = not text.strip()
                nonempty.append(not blank)
                counts["empty_text"] += int(blank)
                if check:
                    lengths = [len(s) for s in tokenize_sentences(text)]
                    eligible.append(self.recipe.passes_filter(lengths))
        labels_a = np.asarray(labels, dtype=np.int64)
        nonempty_a = np.asarray(nonempty, dtype=bool)
        eligible_a = np.asarray(eligible, dtype=bool) if check else None
        if pool:
            split = assign_splits(
                labels_a,
                nonempty_a,
                eligible_a,
                len(self.CLASS_NAMES),
                self.recipe,
                self.CLASS_NAMES,
            )
        else:  # traindev: every usable row is train or dev, in file order
            usable = nonempty_a if eligible_a is None else nonempty_a & eligible_a
            split = np.full(labels_a.shape, -1, dtype=np.int64)
            idx = np.flatnonzero(usable)
            rng = np.random.default_rng(self.recipe.seed)
            split[idx] = np.where(split_traindev(idx.size, self.recipe, rng), 1, 0)
        left_out = nonempty_a & (split == -1)
        passes = np.ones_like(nonempty_a) if eligible_a is None else eligible_a
        counts["over_traindev_filter"] += int((left_out & ~passes).sum())
        counts["not_drawn"] += int((left_out & passes).sum())
        file_a = np.asarray(file_of, dtype=np.int64)
        line_a = np.asarray(lines, dtype=np.int64)
        return {fi: (line_a[file_a == fi], split[file_a == fi]) for fi, _ in to_split}

    def _planned(self, layout, to_split, plan, split_id: int):
        """Pass 2: stream the files again and yield the rows assigned to `split_id`."""
        for fi, path in to_split:
            lines, split = plan[fi]
            k = 0
            for line, text, label in self._read(layout, path, "skip", collections.Counter()):
                if k >= lines.size or lines[k] != line:
                    raise RuntimeError(f"{path} changed while the dataset was being prepared")
                if split[k] == split_id:
                    yield f"{fi}:{line}", {"text": text, "label": label}
                k += 1
        self.info.metadata["skipped"] = self._skipped_dict()

    def _given(self, layout, path: Path, split: str):
        counts = self._skipped[split]
        for line, text, label in self._read(layout, path, self._bad_rows, counts):
            if not text.strip():
                counts["empty_text"] += 1
                continue
            yield f"{split}:{line}", {"text": text, "label": label}
        self.info.metadata["skipped"] = self._skipped_dict()

    def _generate_examples(self, examples):
        """Unused: `_split_generators` returns the `_planned` / `_given` generators directly."""
        yield from examples

    def _skipped_dict(self) -> dict[str, dict[str, int]]:
        return {
            where: {k: int(v) for k, v in c.items() if v}
            for where, c in self._skipped.items()
            if any(c.values())
        }
