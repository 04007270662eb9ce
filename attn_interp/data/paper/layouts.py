"""File layouts shared by several paper builders (Zhang et al. CSVs, the original code's TSVs)."""

from __future__ import annotations

import functools

from attn_interp.data.paper.base import SourceLayout
from attn_interp.data.paper.formats import read_original_tsv, read_zhang_csv

__all__ = ["zhang_csv_layout", "original_tsv_layouts"]


def zhang_csv_layout(archive: str, num_fields: int, *, resplit: bool) -> SourceLayout:
    """Zhang et al. (2015) ``train.csv`` + ``test.csv`` with `num_fields` columns.

    `resplit`: both files form one pool that the recipe re-splits (Yahoo); otherwise test.csv is the
    test split and train.csv is split into train / validation (Amazon, Yelp).
    """
    files = (
        (("pool", "train.csv"), ("pool", "test.csv"))
        if resplit
        else (("traindev", "train.csv"), ("test", "test.csv"))
    )
    return SourceLayout(
        format="zhang_csv",
        files=files,
        reader=functools.partial(_zhang, num_fields=num_fields),
        description=f"Zhang et al. (2015) {archive}: CSV, class index then text fields",
    )


def _zhang(path, bad, *, num_fields):
    return read_zhang_csv(path, num_fields, bad)


def original_tsv_layouts() -> tuple[SourceLayout, SourceLayout]:
    """The original code's ``*_train.tsv``/``*_dev.tsv``/``*_test.tsv``, or ``*_traindev.tsv`` + test."""
    what = "TSVs written by the original code (serrano-s/attn-tests), columns category and tokens"
    return (
        SourceLayout(
            format="original_tsv",
            files=(("train", "*_train.tsv"), ("validation", "*_dev.tsv"), ("test", "*_test.tsv")),
            reader=read_original_tsv,
            description=what + "; used as split",
        ),
        SourceLayout(
            format="original_tsv_traindev",
            files=(("traindev", "*_traindev.tsv"), ("test", "*_test.tsv")),
            reader=read_original_tsv,
            description=what + "; train+dev split by the recipe",
        ),
    )
