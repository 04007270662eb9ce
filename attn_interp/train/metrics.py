"""Classification metrics beside accuracy: macro-F1 and per-class accuracy (recall)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["ClassMetrics", "classification_metrics"]


@dataclasses.dataclass(frozen=True)
class ClassMetrics:
    """Metrics of predictions against labels over `num_classes` classes.

    accuracy: share of correct predictions.
    macro_f1: unweighted mean F1 over the classes that occur in the labels or the predictions (a
      class with neither is left out; one with no true positive counts as F1 = 0).
    per_class_accuracy: float64 `[classes]`, share of each class's documents predicted as that
      class (its recall); NaN for a class without documents.
    support: int64 `[classes]`, documents per class.
    """

    accuracy: float
    macro_f1: float
    per_class_accuracy: np.ndarray
    support: np.ndarray


def classification_metrics(
    labels: np.ndarray, predicted: np.ndarray, num_classes: int
) -> ClassMetrics:
    """`ClassMetrics` of int `[docs]` predictions against int `[docs]` labels in [0, num_classes)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if labels.shape != predicted.shape or labels.size == 0:
        raise ValueError(
            f"need equally many labels and predictions (> 0), got {labels.size} and "
            f"{predicted.size}."
        )
    for name, x in (("labels", labels), ("predictions", predicted)):
        if x.min() < 0 or x.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got {x.min()}..{x.max()}.")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)  # [true, predicted]
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted_count  # F1 = 2 tp / (true + predicted)
        f1 = np.where(denom > 0, 2.0 * tp / denom, np.nan)
    present = denom > 0
    return ClassMetrics(
        accuracy=float(tp.sum() / labels.size),
        macro_f1=float(np.mean(f1[present])),
        per_class_accuracy=recall,
        support=support,
    )
