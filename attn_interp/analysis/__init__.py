"""Tables, figures, per-document views and the report of the erasure results
(paper_notes.md §8, §13).

Typical use::

    models = [ModelResults("yahoo_answers_10k", "han_rnn", results, test_accuracy=0.71)]
    write_report(models, "/tmp/report")        # report.md, report.html, figures/, documents/
"""

from attn_interp.analysis.documents import select_documents, write_document_view
from attn_interp.analysis.figures import (
    figure_js_vs_alpha,
    figure_negative_js_hist,
    figure_optimality_gap,
    figure_removal_boxplots,
    subsample_per_bin,
)
from attn_interp.analysis.loading import WorkdirResults, load_model_results, load_workdir_results
from attn_interp.analysis.model_results import ModelResults, RunInfo, arch_label, ranking_label
from attn_interp.analysis.report import claims, write_report
from attn_interp.analysis.tables import (
    Table,
    accuracy_table,
    aopc_table,
    dataset_table,
    decision_flip_cells,
    decision_flip_table,
    never_flip_table,
    not_optimal_table,
    optimality_gap_table,
    pairwise_table,
    per_class_table,
    removal_fraction_table,
    training_table,
)

__all__ = [
    "RunInfo",
    "WorkdirResults",
    "load_workdir_results",
    "per_class_table",
    "training_table",
    "ModelResults",
    "Table",
    "accuracy_table",
    "aopc_table",
    "arch_label",
    "claims",
    "dataset_table",
    "decision_flip_cells",
    "decision_flip_table",
    "figure_js_vs_alpha",
    "figure_negative_js_hist",
    "figure_optimality_gap",
    "figure_removal_boxplots",
    "load_model_results",
    "never_flip_table",
    "not_optimal_table",
    "optimality_gap_table",
    "pairwise_table",
    "ranking_label",
    "removal_fraction_table",
    "select_documents",
    "subsample_per_bin",
    "write_document_view",
    "write_report",
]
