"""`validate_for_training`: refuse, before any training step, data a classifier cannot be trained
and tested on, with a message that says what to change.

Refused: fewer than two classes in the training split; a train, validation or test split with no
document (a batch needs at least one) — counted as loaded, then (given the encoded corpora) as
documents with tokens, and for train after the training caps. A validation or test split holding
a single class is legal (a small or filtered test set) and only logged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from absl import logging

from attn_interp.data.batching import BatchConfig, apply_training_caps
from attn_interp.data.dataset import LoadedDataset
from attn_interp.data.encoding import EncodedCorpus

__all__ = ["UnusableDataError", "TRAINING_SPLITS", "validate_for_training"]

TRAINING_SPLITS = ("train", "validation", "test")


class UnusableDataError(ValueError):
    """The loaded data cannot train and test a classifier; the message says what to change."""


def _split_problems(
    ds: LoadedDataset, corpora: Mapping[str, EncodedCorpus] | None, caps: BatchConfig | None
) -> list[str]:
    problems = []
    for name in TRAINING_SPLITS:
        split = ds.splits.get(name)
        loaded = 0 if split is None else len(split)
        usable, why = loaded, ""
        if corpora is not None and name in corpora and loaded:
            usable = len(corpora[name])
            if usable < loaded:
                why = f", {loaded - usable} of {loaded} without tokens"
            if name == "train" and caps is not None and usable:
                kept, dropped = apply_training_caps(corpora[name], caps)
                if len(kept) < usable:
                    why += f", {usable - len(kept)} over the training caps {dropped}"
                usable = len(kept)
        if usable < 1:
            problems.append(f"the {name} split has no usable document ({loaded} loaded{why})")
    return problems


def _remedy(ds: LoadedDataset) -> str:
    if ds.source.startswith("local:"):
        return (
            "Give more documents, give the split as a file (local_train / local_validation / "
            "local_test), or change local_split_fractions (now decided by a hash of each text)"
        )
    return "Give more documents (max_docs_per_split, the manual dir's files)"


def validate_for_training(
    ds: LoadedDataset,
    corpora: Mapping[str, EncodedCorpus] | None = None,
    caps: BatchConfig | None = None,
) -> None:
    """Raises `UnusableDataError` if `ds` cannot train and test a classifier (module docstring).

    Args:
      ds: the loaded dataset.
      corpora: split name -> its `encode_corpus` output, to count documents with tokens.
      caps: the training `BatchConfig`, to count training documents under its caps.
    """
    problems = _split_problems(ds, corpora, caps)
    train = ds.splits.get("train")
    present = np.unique(train.labels) if train is not None else np.zeros(0, np.int64)
    if train is not None and len(train) and present.size < 2:
        only = ", ".join(repr(ds.class_names[int(c)]) for c in present)
        problems.insert(
            0,
            f"the train split has a single class ({only}) and a classifier needs at least two "
            "(check the label column: local_label_column)",
        )
    if problems:
        raise UnusableDataError(
            f"dataset {ds.name} cannot be trained on: {'; '.join(problems)}. {_remedy(ds)}."
        )
    for name in ("validation", "test"):
        if np.unique(ds.splits[name].labels).size < 2:
            logging.warning("dataset %s: the %s split holds a single class", ds.name, name)
