"""In-memory dataset splits: `Split` (texts + int32 labels) and `LoadedDataset`."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["Split", "LoadedDataset", "split_fingerprint"]


def split_fingerprint(texts: Sequence[str], labels: np.ndarray) -> str:
    """sha256 hex digest of a split's texts and labels, in order (changes if any document does)."""
    h = hashlib.sha256()
    for text, label in zip(texts, np.asarray(labels).tolist(), strict=True):
        h.update(f"{label}\t{len(text)}\t".encode())
        h.update(text.encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: raw texts and their class ids, int32 `[docs]`, in a fixed order."""

    texts: list[str]
    labels: np.ndarray

    def __post_init__(self):
        labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if labels.shape[0] != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {labels.shape[0]} labels")
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        """The first `n` documents."""
        return Split(self.texts[:n], self.labels[:n])

    def fingerprint(self) -> str:
        """`split_fingerprint` of this split's texts and labels."""
        return split_fingerprint(self.texts, self.labels)


@dataclasses.dataclass(frozen=True)
class LoadedDataset:
    """A loaded dataset.

    name: registered dataset name.
    class_names: label names; label id i is ``class_names[i]``.
    splits: split name ("train", "validation", "test") -> `Split`.
    skipped: where -> {reason: count} for rows not loaded (``empty_text``, ``malformed_row``,
      ``bad_utf8``, ``unseen_label``); "where" is a split name, or "unsplit" for rows dropped
      before a hash split.
    source: where the data came from (pinned wheel, manual dir, local file names).
    """

    name: str
    class_names: tuple[str, ...]
    splits: dict[str, Split]
    skipped: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def total_skipped(self) -> int:
        return sum(sum(v.values()) for v in self.skipped.values())
