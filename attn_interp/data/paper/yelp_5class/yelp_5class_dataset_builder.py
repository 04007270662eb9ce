"""TFDS builder: Yelp reviews with 5 star classes, split as in the paper (user-supplied files).

Accepted manual-dir layouts (first match wins): Zhang et al. (2015)'s ``yelp_review_full_csv``
(test.csv is the test split; train.csv is split 90/10 into train/dev with an independent coin per
row), a Yelp Open Dataset ``review.json`` / ``yelp_academic_dataset_review.json`` (a pool: config
``paper`` draws a class-balanced test of 10,000 per star and train+dev of 130,000 per star as in
Zhang's release, an assumption, then the 90/10 coin), or the original code's TSVs.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attn_interp.data.paper.base import PaperBuilder, PaperBuilderConfig, SourceLayout
from attn_interp.data.paper.formats import read_yelp_json
from attn_interp.data.paper.layouts import original_tsv_layouts, zhang_csv_layout
from attn_interp.data.paper.splits import SplitRecipe

CLASS_NAMES = ("1", "2", "3", "4", "5")  # stars s -> id s - 1
PAPER = SplitRecipe(
    seed=0, test_per_class=10_000, traindev_per_class=130_000, dev_fraction=0.1, dev_by_coin=True
)
DUMMY = SplitRecipe(seed=0, test_per_class=2, traindev_per_class=4, dev_fraction=0.25,
                    dev_by_coin=True)  # fmt: skip


def _review_json(name: str) -> SourceLayout:
    return SourceLayout(
        format="yelp_review_json",
        files=(("pool", name),),
        reader=read_yelp_json,
        description="Yelp Open Dataset reviews: one JSON object per line with stars and text",
    )


class Builder(PaperBuilder):
    """Yelp reviews, 5 classes (label = stars - 1), the paper's 90/10 train/dev coin."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Paper split over Zhang CSVs, review.json or original TSVs."}
    BUILDER_CONFIGS = [
        PaperBuilderConfig(name="paper", description="The paper's split.", recipe=PAPER),
        PaperBuilderConfig(name="dummy", description="Scaled down for fixtures.", recipe=DUMMY),
    ]
    CLASS_NAMES = CLASS_NAMES
    LAYOUTS = (
        zhang_csv_layout("yelp_review_full_csv", 2, resplit=False),
        _review_json("review.json"),
        _review_json("yelp_academic_dataset_review.json"),
        *original_tsv_layouts(),
    )
    HOMEPAGE = "https://www.yelp.com/dataset"
    DOWNLOAD = (
        "https://s3.amazonaws.com/fast-ai-nlp/yelp_review_full_csv.tgz",
        "yelp_review_full_csv",
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put Zhang et al. (2015)'s yelp_review_full_csv files train.csv and test.csv (2 columns: stars 1-5,
review text) in the manual dir, or a Yelp Open Dataset review.json, or the TSVs written by the
original code (*_train.tsv, *_dev.tsv, *_test.tsv, or *_traindev.tsv + *_test.tsv)."""
