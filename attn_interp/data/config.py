"""`DataConfig`: which dataset to load and from where (frozen; experiments build it from flags)."""

from __future__ import annotations

import codecs
import dataclasses
import math
import re

__all__ = ["DataConfig"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where a dataset comes from.

    dataset: a registered name (`attn_interp.data.available_datasets()`), e.g. "yahoo_answers_10k"
      or "local".
    data_dir: TFDS data dir for prepared datasets (default ``<cache_dir>/tfds``).
    manual_dir: folder with raw files placed by hand (for yahoo_answers_10k: train.tsv, dev.tsv,
      test.tsv); used instead of downloading when it holds them.
    cache_dir: downloads and extracted raw files (default $ATTN_INTERP_CACHE or
      ~/.cache/attn_interp).
    local_path: dataset "local": one file split deterministically by a hash of each text into
      train / validation / test with `local_split_fractions` (duplicates land in the same split).
    local_train, local_validation, local_test: dataset "local": given split files instead of
      `local_path`. Train and test are required; without a validation file, validation is the
      share ``local_split_fractions[1]`` (default 10%) of the train file's documents, chosen by a
      hash of each text.
    local_dir: dataset "local": a folder of one text file per document, label = folder name:
      ``ROOT/train/LABEL/*`` and ``ROOT/test/LABEL/*`` (optional ``ROOT/validation/LABEL/*``, else
      carved out of train as above), or ``ROOT/LABEL/*`` split by hash like `local_path`.
    local_skip_folders: comma-separated label folders of `local_dir` to leave out (e.g. "unsup").
    local_encoding: text encoding of the local files, e.g. "utf-8" (default), "latin-1",
      "cp1252"; rows with bytes invalid in it are bad rows (`bad_rows`).
    local_name: dataset "local": the corpus's name in Table 1, the report, run folders and logs
      (e.g. "cfpb"), so two corpora of one workdir stay apart; letters, digits, "_", "-", "."
      only. Ignored by the other datasets.
    local_format: "auto" (by extension), "tsv", "csv", "jsonl" or "json".
    local_text_column, local_label_column: column / field names of the text and the label.
    local_split_fractions: train / validation / test shares for the hash split; they sum to 1.
    local_split_salt: changes the hash split (same salt, same split on every machine).
    bad_rows: "error" (raise, naming file and line) or "skip" (count and log) for malformed rows,
      invalid UTF-8 and validation/test labels never seen in train.
    max_docs_per_split: keep only the first N documents of every split (quick runs).
    """

    dataset: str = "yahoo_answers_10k"
    data_dir: str | None = None
    manual_dir: str | None = None
    cache_dir: str | None = None
    local_path: str | None = None
    local_train: str | None = None
    local_validation: str | None = None
    local_test: str | None = None
    local_dir: str | None = None
    local_skip_folders: str = ""
    local_encoding: str = "utf-8"
    local_name: str = "local"
    local_format: str = "auto"
    local_text_column: str = "text"
    local_label_column: str = "label"
    local_split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    local_split_salt: str = ""
    bad_rows: str = "error"
    max_docs_per_split: int | None = None

    def __post_init__(self):
        fr = tuple(float(f) for f in self.local_split_fractions)
        if len(fr) != 3 or any(f < 0 or not math.isfinite(f) for f in fr):
            raise ValueError(
                f"local_split_fractions must be 3 non-negative numbers (train, validation, test), "
                f"got {self.local_split_fractions!r}"
            )
        if abs(sum(fr) - 1.0) > 1e-6 or fr[0] == 0:
            raise ValueError(
                f"local_split_fractions must sum to 1 with a non-zero train share, got {fr}"
            )
        object.__setattr__(self, "local_split_fractions", fr)
        if self.bad_rows not in ("error", "skip"):
            raise ValueError(f"bad_rows must be 'error' or 'skip', got {self.bad_rows!r}")
        try:
            codecs.lookup(self.local_encoding)
        except LookupError:
            raise ValueError(
                f"unknown local_encoding {self.local_encoding!r}; use a Python codec name such as "
                "utf-8, latin-1 or cp1252"
            ) from None
        if not _NAME.fullmatch(self.local_name):
            raise ValueError(
                f"local_name must be a folder-safe name (letters, digits, '_', '-', '.'; starting "
                f"with a letter or digit), got {self.local_name!r}"
            )
        if self.max_docs_per_split is not None and self.max_docs_per_split < 1:
            raise ValueError(
                f"max_docs_per_split must be a positive integer or None, got {self.max_docs_per_split}"
            )

    @property
    def corpus_name(self) -> str:
        """The dataset's name in reports, folders and logs: `local_name` for "local", else `dataset`."""
        return self.local_name if self.dataset == "local" else self.dataset


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
