"""TFDS builders for the paper's four datasets over user-supplied files, and their split recipes.

Registered dataset names (`attn_interp.data.load_splits`): ``yahoo_answers``, ``imdb_10class``,
``yelp_5class``, ``amazon_5class`` (builder config ``paper``) and ``<name>/dummy`` (the scaled-down
recipe used with the ``dummy_data/`` fixtures). See docs/datasets.md.
"""

from attn_interp.data.paper.splits import (
    PAPER_TRAINING_CAPS,
    SplitRecipe,
    TrainingCaps,
    assign_splits,
    paper_batch_config,
)

__all__ = [
    "PAPER_TRAINING_CAPS",
    "SplitRecipe",
    "TrainingCaps",
    "assign_splits",
    "paper_batch_config",
]
