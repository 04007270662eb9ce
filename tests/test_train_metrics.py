"""Macro-F1 and per-class accuracy against a plain per-class loop and scikit-learn."""

import numpy as np
import pytest

from attn_interp.train.metrics import classification_metrics


def _reference(labels, predicted, num_classes):
    f1s, recalls = [], []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(labels, predicted, strict=True) if t == c and p == c)
        true = sum(1 for t in labels if t == c)
        pred = sum(1 for p in predicted if p == c)
        recalls.append(tp / true if true else float("nan"))
        if true or pred:
            f1s.append(2 * tp / (true + pred))
    return sum(f1s) / len(f1s), recalls


@pytest.mark.parametrize("seed", range(5))
def test_random_predictions_match_a_per_class_loop_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 9))
    n = int(rng.integers(1, 60))
    labels = rng.integers(0, c, n)
    predicted = np.where(rng.random(n) < 0.6, labels, rng.integers(0, c, n))
    got = classification_metrics(labels, predicted, c)
    macro, recalls = _reference(labels.tolist(), predicted.tolist(), c)
    assert got.macro_f1 == pytest.approx(macro, abs=1e-12)
    np.testing.assert_allclose(got.per_class_accuracy, recalls, equal_nan=True)
    assert got.accuracy == pytest.approx(np.mean(labels == predicted))
    assert got.support.tolist() == np.bincount(labels, minlength=c).tolist()
    sklearn = pytest.importorskip("sklearn.metrics")
    assert got.macro_f1 == pytest.approx(sklearn.f1_score(labels, predicted, average="macro"))


def test_imbalanced_corpus_accuracy_hides_what_macro_f1_shows():
    labels = np.array([0] * 90 + [1] * 5 + [2] * 5)
    predicted = np.zeros(100, dtype=int)  # always the majority class
    got = classification_metrics(labels, predicted, 4)  # class 3 never occurs
    assert got.accuracy == pytest.approx(0.9)
    assert got.macro_f1 == pytest.approx((2 * 90 / 190) / 3)
    assert got.per_class_accuracy[:3].tolist() == [1.0, 0.0, 0.0]
    assert np.isnan(got.per_class_accuracy[3])


def test_one_document_and_bad_input():
    got = classification_metrics(np.array([1]), np.array([1]), 2)
    assert (got.accuracy, got.macro_f1) == (1.0, 1.0)
    with pytest.raises(ValueError, match="equally many"):
        classification_metrics(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_metrics(np.array([0, 2]), np.array([0, 1]), 2)
