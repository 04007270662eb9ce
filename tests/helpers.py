"""Helpers shared by the test files: synthetic erasure inputs, tiny datasets, result checks."""

from __future__ import annotations

import csv
import json
import random

import jax.numpy as jnp
import numpy as np

from attn_interp.data import DataConfig

WORDS = "alpha beta gamma delta eps zeta eta theta iota kappa lam mu nu xi omi pi rho sigma".split()

D, C = 8, 4


def make_inputs(seed: int, dtype, n: int = 7):
    """Rows: random (with padding), n=1, n=2, ties, near one-hot, never-flip, bias-only flip."""
    rng = np.random.default_rng(seed)
    lengths = np.array([n, 5, 3, 1, 2, n, n, n, n])
    b = len(lengths)
    mask = np.arange(n)[None, :] < lengths[:, None]
    values = rng.normal(size=(b, n, D))
    scores = 1.5 * rng.normal(size=(b, n))
    scores[5, :4] = 0.7  # ties in attention
    scores[6] = 0.0
    scores[6, 2] = 12.0  # near one-hot (remaining mass ~ 4e-5)
    # Head: W's first C rows ~ 3*identity so item classes can be steered; bias prefers class 0.
    w = 3.0 * np.eye(D, C) + 0.1 * rng.normal(size=(D, C))
    bias = np.array([1.0, 0.0, 0.0, 0.0])
    values[7, :, :C] = 2.0 * np.eye(C)[0] + 0.05 * rng.normal(size=(n, C))  # never flips
    values[8, :, :C] = 2.0 * np.eye(C)[1] + 0.05 * rng.normal(size=(n, C))  # flips only at k = n
    values = values * mask[..., None]
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return cast(values), cast(scores), jnp.asarray(mask), cast(w), cast(bias)


def assert_minimum_bounds_every_ranking(results) -> None:
    """The exact minimum flip set is a lower bound: k_min <= k of every ranking that flips, and a
    ranking flips only where some set flips (k_min != -1)."""
    if "k_min" not in results:
        return
    k_min = np.asarray(results["k_min"])
    names = [k[5:-2] for k in results if k.startswith("rank_") and k.endswith("_k")]
    assert names
    for name in names:
        k = np.asarray(results[f"rank_{name}_k"])
        bad = np.flatnonzero((k > 0) & ((k_min == -1) | (k_min > k)))
        assert bad.size == 0, (name, [(i, k[i], k_min[i]) for i in bad[:5]])


def affine_head(w, bias):
    def head(values, weights):
        return jnp.einsum("bn,bnd->bd", weights, values) @ w + bias

    return head


def write_topic_split(path, n: int, seed: int, unknown: int = 0) -> None:
    """n documents of WORDS, then `unknown` documents of words that occur nowhere else."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(unknown):
            f.write(json.dumps({"text": f"quux{i} blargh zork", "label": "c0"}) + "\n")
        for _ in range(n):
            label = int(rng.integers(0, 3))
            sentences = []
            for _ in range(int(rng.integers(1, 5))):  # some documents have a single sentence
                words = rng.choice(WORDS[label * 6 : label * 6 + 6], int(rng.integers(2, 7)))
                noise = rng.choice(WORDS, 2)
                sentence = " ".join([*words, *noise])
                sentences.append(sentence[0].upper() + sentence[1:] + ".")
            f.write(json.dumps({"text": " ".join(sentences), "label": f"c{label}"}) + "\n")


def local_data_config(root) -> DataConfig:
    """The local dataset of ROOT/{train,validation,test}.jsonl."""
    return DataConfig(
        dataset="local",
        local_train=str(root / "train.jsonl"),
        local_validation=str(root / "validation.jsonl"),
        local_test=str(root / "test.jsonl"),
    )


def assert_same_erasure_results(got_dir: str, want_dir: str) -> tuple[dict, dict]:
    """Two erasure output folders hold equal arrays and summaries (timings aside); returns the
    (results, summary) of `want_dir`."""
    from attn_interp.erasure import evaluate as ev
    from attn_interp.erasure import to_flat

    (got, got_summary), (want, want_summary) = map(ev.load_erasure_results, (got_dir, want_dir))
    got, want = to_flat(got), to_flat(want)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    got_summary.pop("throughput")
    want_summary.pop("throughput")
    assert got_summary == want_summary
    return want, want_summary


def write_tiny_dataset(path: str, n: int = 90, seed: int = 0) -> None:
    """A 3-class CSV whose labels depend on a marker word; 1 to 4 sentences per document."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)]
    marker = {"pos": "good", "neg": "bad", "mid": "so"}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(sorted(marker))
            sents = []
            for _ in range(rng.randint(1, 4)):
                toks = [rng.choice(words) for _ in range(rng.randint(3, 7))]
                if rng.random() < 0.7:
                    toks.insert(rng.randint(0, len(toks)), marker[label])
                sents.append(" ".join(toks).capitalize() + ".")
            w.writerow([" ".join(sents), label])
