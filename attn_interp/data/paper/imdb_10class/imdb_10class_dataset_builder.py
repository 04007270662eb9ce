"""TFDS builder: IMDB reviews with 10 rating classes, split as in the paper (user-supplied files).

Accepted manual-dir layouts (first match wins): the original code's ``data.json`` (one JSON array of
objects with ``rating`` 1-10 and ``review``; re-split 80/10/10 at random), Tang et al. (2015)'s
``imdb.{train,dev,test}.txt.ss`` (used as split; ``<sssss>`` sentence marks become line breaks),
or the original code's TSVs.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attn_interp.data.paper.base import PaperBuilder, PaperBuilderConfig, SourceLayout
from attn_interp.data.paper.formats import read_imdb_json, read_tang
from attn_interp.data.paper.layouts import original_tsv_layouts
from attn_interp.data.paper.splits import SplitRecipe

CLASS_NAMES = tuple(str(r) for r in range(1, 11))  # rating r -> id r - 1
PAPER = SplitRecipe(seed=0, test_fraction=0.1, dev_fraction=1 / 9)  # 80 / 10 / 10
DUMMY = SplitRecipe(seed=0, test_fraction=0.2, dev_fraction=0.25)  # 60 / 20 / 20


class Builder(PaperBuilder):
    """IMDB, 10 rating classes (label = rating - 1), the paper's 80/10/10 split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Paper split over data.json, Tang et al. files or original TSVs."}
    BUILDER_CONFIGS = [
        PaperBuilderConfig(name="paper", description="80/10/10.", recipe=PAPER),
        PaperBuilderConfig(name="dummy", description="60/20/20 for fixtures.", recipe=DUMMY),
    ]
    CLASS_NAMES = CLASS_NAMES
    LAYOUTS = (
        SourceLayout(
            format="imdb_json",
            files=(("pool", "data.json"),),
            reader=read_imdb_json,
            description="the original code's input: a JSON array of {rating, review} objects",
        ),
        SourceLayout(
            format="tang_sssss",
            files=(
                ("train", "*train.txt.ss"),
                ("validation", "*dev.txt.ss"),
                ("test", "*test.txt.ss"),
            ),
            reader=read_tang,
            description="Tang et al. (2015) document-level IMDB, used as split",
        ),
        *original_tsv_layouts(),
    )
    HOMEPAGE = "https://github.com/serrano-s/attn-tests"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the original code's data.json (a JSON array of objects with "rating" 1-10 and "review") in the
manual dir, or Tang et al. (2015)'s imdb.train.txt.ss, imdb.dev.txt.ss and imdb.test.txt.ss, or the
TSVs written by the original code (*_train.tsv, *_dev.tsv, *_test.tsv)."""
