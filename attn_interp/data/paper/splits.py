"""The paper's train / validation / test construction (paper_notes.md §3), deterministic given a
seed.

`SplitRecipe` says how rows become splits; `assign_splits` applies it to the labels of a pool of
rows. Three row layouts occur (see `attn_interp.data.paper.base`):

* **pool**: one set of rows (e.g. Zhang's train.csv + test.csv of Yahoo, IMDB's ``data.json``) is
  re-split. Test is either `test_per_class` rows per class drawn at random among non-empty rows
  (Yahoo: 5,000) or a random `test_fraction` of all rows (IMDB: 10%). Train+dev is then
  `traindev_per_class` rows per class (Yahoo: 140,000; None = all remaining rows) drawn at random
  from the remaining rows that pass the train+dev filter (Yahoo: <= 50 sentences and <= 350 tokens
  in every sentence).
* **traindev + test**: the test file is used as is (blank rows dropped); the train+dev file is
  split into train and dev (Amazon, Yelp: an independent 10% coin per row).
* **given splits**: train / dev / test files are used as they are (files made by the original code).

Dev is a random `dev_fraction` of train+dev: exactly ``round(dev_fraction * n)`` rows, or with
`dev_by_coin` an independent coin per row in file order.

`PAPER_TRAINING_CAPS` holds the paper's training-only outlier caps (its ``*_remoutliers`` files) as
`BatchConfig` presets: `paper_batch_config("amazon_5class")` drops Amazon training documents with
more than 15 sentences or a sentence longer than 130 tokens. Validation and test are never capped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attn_interp.data.batching import BatchConfig

__all__ = [
    "SplitRecipe",
    "SPLIT_NAMES",
    "UNUSED",
    "assign_splits",
    "split_traindev",
    "TrainingCaps",
    "PAPER_TRAINING_CAPS",
    "paper_batch_config",
]

#: Split ids used by `assign_splits`: 0 train, 1 validation, 2 test; `UNUSED` rows are left out.
SPLIT_NAMES = ("train", "validation", "test")
UNUSED = -1


@dataclasses.dataclass(frozen=True)
class SplitRecipe:
    """How rows become train / validation / test (see the module docstring).

    seed: seed of every random choice (same seed and rows -> same splits on every machine).
    test_per_class: pool layout: class-balanced test of this many non-empty rows per class.
    test_fraction: pool layout, when `test_per_class` is None: random share of the rows for test.
    traindev_per_class: class-balanced train+dev of this many rows per class (None: all the rest).
    dev_fraction: share of train+dev that becomes validation.
    dev_by_coin: independent coin per row (Amazon/Yelp) instead of an exact random share (Yahoo).
    traindev_max_sentences, traindev_max_tokens_per_sentence: rows over these are never drawn
      into train+dev (Yahoo: 50 / 350); None = no filter.
    """

    seed: int = 0
    test_per_class: int | None = None
    test_fraction: float = 0.0
    traindev_per_class: int | None = None
    dev_fraction: float = 0.1
    dev_by_coin: bool = False
    traindev_max_sentences: int | None = None
    traindev_max_tokens_per_sentence: int | None = None

    def __post_init__(self):
        for name in ("test_per_class", "traindev_per_class"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"SplitRecipe.{name} must be None or >= 1, got {v}")
        for name in ("test_fraction", "dev_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"SplitRecipe.{name} must be in [0, 1), got {v}")

    @property
    def has_traindev_filter(self) -> bool:
        return (
            self.traindev_max_sentences is not None
            or self.traindev_max_tokens_per_sentence is not None
        )

    def passes_filter(self, sentence_lengths: list[int]) -> bool:
        """Whether a document with these tokens-per-sentence may be drawn into train+dev."""
        if self.traindev_max_sentences is not None and (
            len(sentence_lengths) > self.traindev_max_sentences
        ):
            return False
        cap = self.traindev_max_tokens_per_sentence
        return cap is None or max(sentence_lengths, default=0) <= cap


def split_traindev(n: int, recipe: SplitRecipe, rng: np.random.Generator) -> np.ndarray:
    """Bool `[n]`: True for the train+dev rows (in file order) that become validation."""
    if recipe.dev_by_coin:
        return rng.random(n) < recipe.dev_fraction
    dev = np.zeros(n, dtype=bool)
    dev[rng.permutation(n)[: int(round(recipe.dev_fraction * n))]] = True
    return dev


def assign_splits(
    labels: np.ndarray,
    nonempty: np.ndarray,
    eligible: np.ndarray | None,
    num_classes: int,
    recipe: SplitRecipe,
    class_names: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Split id per row of a pool: 0 train, 1 validation, 2 test, `UNUSED` (-1) left out.

    Args:
      labels: int `[rows]` class ids in ``[0, num_classes)``.
      nonempty: bool `[rows]`; empty rows are never used.
      eligible: bool `[rows]` rows passing the train+dev filter, or None (all pass).
      num_classes: number of classes.
      recipe: the split recipe.
      class_names: for error messages.

    Raises:
      ValueError: when a class has fewer rows than `test_per_class` / `traindev_per_class` ask for;
        the message names the class and the counts (use a recipe with smaller counts).
    """
    labels = np.asarray(labels, dtype=np.int64)
    nonempty = np.asarray(nonempty, dtype=bool)
    n = labels.shape[0]
    eligible = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if nonempty.shape != (n,) or eligible.shape != (n,):
        raise ValueError(f"labels, nonempty and eligible must all be [rows]={n} long")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    rng = np.random.default_rng(recipe.seed)
    out = np.full(n, UNUSED, dtype=np.int64)
    names = class_names or tuple(str(c) for c in range(num_classes))
    if recipe.test_per_class is None:
        usable = np.flatnonzero(nonempty)
        perm = rng.permutation(usable)
        out[perm[: int(round(recipe.test_fraction * usable.size))]] = 2
    for c in range(num_classes):
        perm = rng.permutation(np.flatnonzero((labels == c) & nonempty))
        if recipe.test_per_class is not None:
            if perm.size < recipe.test_per_class:
                raise ValueError(
                    f"class {names[c]!r} has {perm.size} non-empty documents, fewer than the "
                    f"{recipe.test_per_class} test documents per class the split recipe asks for; "
                    "supply the full dataset or use a builder config with smaller counts"
                )
            out[perm[: recipe.test_per_class]] = 2
        rest = perm[(out[perm] != 2) & eligible[perm]]
        k = recipe.traindev_per_class
        if k is not None:
            if rest.size < k:
                raise ValueError(
                    f"class {names[c]!r} has {rest.size} documents left for train+dev after the "
                    f"test draw and the length filter, fewer than the {k} per class the split "
                    "recipe asks for; supply the full dataset or use a config with smaller counts"
                )
            rest = rest[:k]
        out[rest] = 0
    traindev = np.flatnonzero(out == 0)  # file order
    out[traindev[split_traindev(traindev.size, recipe, rng)]] = 1
    return out


@dataclasses.dataclass(frozen=True)
class TrainingCaps:
    """Training-only outlier caps of the paper (documents over a cap are dropped from training)."""

    max_sentences_per_doc: int | None
    max_tokens_per_sentence: int | None


#: The paper's training caps per dataset (paper_notes.md §3.1): Amazon and Yelp trained on their
#: ``*_train_remoutliers.tsv``; Yahoo's train+dev was drawn with <= 50 / <= 350 (its stricter
#: ``_remoutliers`` file, 25 / 175, was not used: ``yahoo_answers_remoutliers``); no IMDB caps.
PAPER_TRAINING_CAPS: dict[str, TrainingCaps] = {
    "yahoo_answers": TrainingCaps(50, 350),
    "yahoo_answers_remoutliers": TrainingCaps(25, 175),
    "imdb_10class": TrainingCaps(None, None),
    "amazon_5class": TrainingCaps(15, 130),
    "yelp_5class": TrainingCaps(43, 200),
}


def paper_batch_config(dataset: str, base: BatchConfig | None = None) -> BatchConfig:
    """`base` (default `BatchConfig()`) with the paper's training caps for `dataset`.

    `dataset` is a key of `PAPER_TRAINING_CAPS`, or a registered name such as
    ``"yelp_5class/dummy"`` (the part before ``/`` is used).
    """
    key = dataset.split("/", 1)[0]
    try:
        caps = PAPER_TRAINING_CAPS[key]
    except KeyError:
        raise ValueError(
            f"no paper training caps for {dataset!r}; known: {', '.join(PAPER_TRAINING_CAPS)}"
        ) from None
    return dataclasses.replace(
        base or BatchConfig(),
        max_sentences_per_doc=caps.max_sentences_per_doc,
        max_tokens_per_sentence=caps.max_tokens_per_sentence,
    )
