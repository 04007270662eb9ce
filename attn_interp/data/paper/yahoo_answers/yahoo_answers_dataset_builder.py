"""TFDS builder: Yahoo! Answers, 10 topics, split as in the paper (from user-supplied files).

Accepted manual-dir layouts (first match wins): Zhang et al. (2015) ``yahoo_answers_csv``
(``train.csv`` + ``test.csv``, re-split as a pool), or the original code's TSVs. Config ``paper``:
test 5,000 per class from non-empty documents, train+dev 140,000 per class from the rest among
documents with <= 50 sentences and <= 350 tokens per sentence, dev an exact random 10%.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attn_interp.data.paper.base import PaperBuilder, PaperBuilderConfig
from attn_interp.data.paper.layouts import original_tsv_layouts, zhang_csv_layout
from attn_interp.data.paper.splits import SplitRecipe
from attn_interp.data.yahoo_answers_10k.yahoo_answers_10k_dataset_builder import CLASS_NAMES

PAPER = SplitRecipe(
    seed=0,
    test_per_class=5000,
    traindev_per_class=140_000,
    dev_fraction=0.1,
    traindev_max_sentences=50,
    traindev_max_tokens_per_sentence=350,
)
DUMMY = SplitRecipe(
    seed=0,
    test_per_class=2,
    traindev_per_class=5,
    dev_fraction=0.2,
    traindev_max_sentences=8,
    traindev_max_tokens_per_sentence=30,
)


class Builder(PaperBuilder):
    """Yahoo! Answers topics (10 classes, Zhang class order), the paper's split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Paper split over Zhang CSVs or the original TSVs."}
    BUILDER_CONFIGS = [
        PaperBuilderConfig(name="paper", description="The paper's counts.", recipe=PAPER),
        PaperBuilderConfig(name="dummy", description="Scaled down for fixtures.", recipe=DUMMY),
    ]
    CLASS_NAMES = CLASS_NAMES
    LAYOUTS = (zhang_csv_layout("yahoo_answers_csv", 4, resplit=True), *original_tsv_layouts())
    HOMEPAGE = "https://webscope.sandbox.yahoo.com/catalog.php?datatype=l"
    DOWNLOAD = ("https://s3.amazonaws.com/fast-ai-nlp/yahoo_answers_csv.tgz", "yahoo_answers_csv")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put Zhang et al. (2015)'s yahoo_answers_csv files train.csv and test.csv (4 columns: class index
1-10, question title, question content, best answer) in the manual dir, or the TSVs written by the
original code (*_train.tsv, *_dev.tsv, *_test.tsv with columns category and tokens)."""
