"""Fingerprints: what a cached result (statistics, trained model, erasure results) was made from.

`dataset_fingerprint` digests the prepared splits' contents (texts and labels, in order) and the
class names, so the same files give the same digest on every machine and any changed document,
label, split assignment or class order gives another. `record_digest` digests a JSON record (a
configuration) independently of key order. Stages store these digests beside their outputs and
compare them before reusing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from attn_interp.data.dataset import LoadedDataset

__all__ = ["DataFingerprint", "dataset_fingerprint", "record_digest", "same_data"]


@dataclasses.dataclass(frozen=True)
class DataFingerprint:
    """Digests of a prepared dataset.

    splits: split name -> sha256 hex digest of that split's texts and labels (`Split.fingerprint`).
    class_names: the class names, indexed by label id.
    digest: sha256 hex digest over the class names and every split's digest.
    """

    splits: Mapping[str, str]
    class_names: tuple[str, ...]
    digest: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: {"digest", "splits", "class_names"}."""
        return {
            "digest": self.digest,
            "splits": dict(self.splits),
            "class_names": list(self.class_names),
        }


def record_digest(record: Any) -> str:
    """sha256 hex digest of a JSON-serialisable record, independent of mapping key order."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def dataset_fingerprint(ds: LoadedDataset) -> DataFingerprint:
    """The `DataFingerprint` of a loaded dataset (hashes every document once)."""
    splits = {name: split.fingerprint() for name, split in sorted(ds.splits.items())}
    names = tuple(str(c) for c in ds.class_names)
    return DataFingerprint(
        splits=splits,
        class_names=names,
        digest=record_digest({"class_names": list(names), "splits": splits}),
    )


def same_data(recorded: Mapping[str, str] | None, current: DataFingerprint) -> bool:
    """Whether per-split digests recorded earlier (e.g. a run's config.json) match `current`."""
    return recorded is not None and dict(recorded) == dict(current.splits)
