"""TFDS builder: Amazon reviews with 5 star classes, split as in the paper (user-supplied files).

Accepted manual-dir layouts (first match wins): Zhang et al. (2015)'s ``amazon_review_full_csv``
(test.csv is the test split without zero-length documents; train.csv is split 90/10 into train/dev
with an independent coin per row), or the original code's TSVs.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attn_interp.data.paper.base import PaperBuilder, PaperBuilderConfig
from attn_interp.data.paper.layouts import original_tsv_layouts, zhang_csv_layout
from attn_interp.data.paper.splits import SplitRecipe

CLASS_NAMES = ("1", "2", "3", "4", "5")  # stars s -> id s - 1
PAPER = SplitRecipe(seed=0, dev_fraction=0.1, dev_by_coin=True)
DUMMY = SplitRecipe(seed=0, dev_fraction=0.25, dev_by_coin=True)


class Builder(PaperBuilder):
    """Amazon reviews, 5 classes (label = stars - 1), the paper's 90/10 train/dev coin."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Paper split over Zhang CSVs or original TSVs."}
    BUILDER_CONFIGS = [
        PaperBuilderConfig(name="paper", description="The paper's split.", recipe=PAPER),
        PaperBuilderConfig(name="dummy", description="Scaled down for fixtures.", recipe=DUMMY),
    ]
    CLASS_NAMES = CLASS_NAMES
    LAYOUTS = (
        zhang_csv_layout("amazon_review_full_csv", 3, resplit=False),
        *original_tsv_layouts(),
    )
    HOMEPAGE = "https://jmcauley.ucsd.edu/data/amazon/"
    DOWNLOAD = (
        "https://s3.amazonaws.com/fast-ai-nlp/amazon_review_full_csv.tgz",
        "amazon_review_full_csv",
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put Zhang et al. (2015)'s amazon_review_full_csv files train.csv and test.csv (3 columns: stars 1-5,
review title, review text) in the manual dir, or the TSVs written by the original code
(*_train.tsv, *_dev.tsv, *_test.tsv, or *_traindev.tsv + *_test.tsv)."""
