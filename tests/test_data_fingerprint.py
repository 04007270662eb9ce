"""`attn_interp.data.fingerprint`: digests change with any document, label, split or class name."""

import numpy as np

from attn_interp.data import LoadedDataset, Split
from attn_interp.data.fingerprint import dataset_fingerprint, record_digest, same_data


def _dataset(texts=("a b.", "c d.", "e f."), labels=(0, 1, 0), names=("x", "y"), test=("g.",)):
    return LoadedDataset(
        name="local",
        class_names=names,
        splits={
            "train": Split(list(texts), np.array(labels)),
            "test": Split(list(test), np.ones(len(test), int)),
        },
    )


def test_same_content_same_digest_and_every_change_moves_it():
    base = dataset_fingerprint(_dataset())
    assert base == dataset_fingerprint(_dataset())
    assert len(base.digest) == 64 and set(base.splits) == {"train", "test"}
    changed = [
        _dataset(texts=("a b.", "c d.", "e g.")),  # one character of one document
        _dataset(labels=(0, 1, 1)),  # one label
        _dataset(texts=("c d.", "a b.", "e f."), labels=(1, 0, 0)),  # order of documents
        _dataset(names=("y", "x")),  # class order (same ids, other meaning)
        _dataset(test=("g.", "h.")),  # another split
    ]
    digests = {dataset_fingerprint(d).digest for d in changed}
    assert base.digest not in digests and len(digests) == len(changed)
    # A document moved from one split to another changes the digest too.
    moved = _dataset(texts=("a b.", "c d."), labels=(0, 1), test=("e f.",))
    assert dataset_fingerprint(moved).digest != base.digest


def test_record_digest_ignores_key_order_and_same_data_compares_splits():
    assert record_digest({"a": 1, "b": [1, 2]}) == record_digest({"b": [1, 2], "a": 1})
    assert record_digest({"a": 1}) != record_digest({"a": 2})
    fp = dataset_fingerprint(_dataset())
    assert same_data(dict(fp.splits), fp)
    assert not same_data(None, fp)
    assert not same_data({**fp.splits, "train": "0" * 64}, fp)
    assert fp.to_json()["digest"] == fp.digest
