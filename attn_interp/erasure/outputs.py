"""`write_outputs`: per-instance .npz, CSVs in the original code's layout, and summary.json.

Every file is written atomically (`attn_interp.io_utils`: temporary file, fsync, `os.replace`).
CSV rows cover every instance (n = 1 included; filter on seq_len > 1 as the paper does). The `id`
column is 1-based (doc_id + 1), as in the original. Missing values are written as "nan".
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping

import numpy as np

from attn_interp.erasure.results import (
    RemovalCurve,
    SingleErasure,
    SuiteResults,
    random_ranking_names,
    to_flat,
)
from attn_interp.erasure.summary import summarize
from attn_interp.io_utils import atomic_write_bytes, atomic_write_npz, json_default
from attn_interp.run_dirs import ErasureDir

_SINGLE_NAMES = (("top", "highest"), ("second", "2ndhighest"))


def _write_csv(path: str, columns: dict[str, np.ndarray]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    cols = [np.asarray(c).tolist() for c in columns.values()]
    writer.writerows(zip(*cols, strict=True))
    atomic_write_bytes(path, text.getvalue().encode())


def _removal_columns(curve: RemovalCurve, suffix: str) -> dict[str, np.ndarray]:
    return {
        f"needed_to_rem_x_items_for_decflip_{suffix}": curve.k,
        f"needed_to_rem_x_probmass_for_decflip_{suffix}": curve.probmass,
        f"needed_to_rem_frac_x_for_decflip_{suffix}": curve.frac,
    }


def _single_columns(single: SingleErasure, suffix: str) -> dict[str, np.ndarray]:
    return {f"kl_{suffix}": single.kl, f"js_{suffix}": single.js, f"dec_flip_{suffix}": single.flip}


def _first_vs_second(results: SuiteResults, ident: dict) -> dict[str, np.ndarray]:
    cols = dict(ident)
    for target, suffix in (*_SINGLE_NAMES, ("lowest", "lowest"), ("second_lowest", "2ndlowest")):
        cols.update(_single_columns(results.singles[target], suffix))
    return cols


def _random_sample_stats(results: SuiteResults, randoms: list[int], ids: dict) -> dict:
    cols = dict(ids)
    for group, key in (("attn_weight_extracted", "weight"), ("kl_div", "kl"), ("js_div", "js")):
        for i in randoms:
            cols[f"{group}_{i}"] = getattr(results.singles[f"random{i}_first"], key)
    for group, key in (
        ("needed_to_rem_x_items_for_decflip", "k"),
        ("needed_to_rem_x_probmass_for_decflip", "probmass"),
        ("needed_to_rem_frac_x_for_decflip", "frac"),
    ):
        for i in randoms:
            cols[f"{group}_{i}"] = getattr(results.rankings[f"random{i}"], key)
    return cols


def _gradient_stats(results: SuiteResults, ids: dict) -> dict[str, np.ndarray]:
    cols = dict(ids)
    cols.update(_removal_columns(results.rankings["gradient"], "grad"))
    cols.update(_removal_columns(results.rankings["grad_x_attention"], "gradmult"))
    for prefix, suffix in (("grad_", "plaingrad"), ("gxa_", "gradmult")):
        for target, name in _SINGLE_NAMES:
            cols.update(_single_columns(results.singles[prefix + target], f"{name}_{suffix}"))
    return cols


def _random_comparison(single: SingleErasure, ids: dict) -> dict[str, np.ndarray]:
    cols = dict(ids)
    cols["not_negone_if_rand_caused_decflip"] = np.where(single.flip != -1, 1, -1)
    cols["zeroed_weight"] = single.weight
    cols["rand_kl_div"] = single.kl
    cols["rand_js_div"] = single.js
    cols["rand_index"] = single.index
    return cols


def write_outputs(
    results: SuiteResults,
    out_dir: str | os.PathLike,
    *,
    summary: dict | None = None,
    throughput: Mapping[str, float] | None = None,
) -> None:
    """Write `results.npz`, the original-style CSVs and `summary.json` into `out_dir`.

    CSVs (the original code's layout): first_vs_second.csv, dec_flip_stats.csv,
    rand_sample_stats.csv, grad_based_stats.csv, rand_nontop_decflipjs.csv,
    rand_nontopbygrad_decflipjs.csv, rand_nontopbygradmult_decflipjs.csv. A CSV whose rankings
    were not computed is skipped. `summary` defaults to `summarize(results)`; `throughput` is
    stored under "throughput".
    """
    folder = ErasureDir(out_dir)
    os.makedirs(folder.path, exist_ok=True)
    ident = {"id": np.asarray(results.docs.doc_id) + 1}
    ids = {**ident, "seq_len": np.asarray(results.docs.seq_len)}
    rankings = results.rankings

    atomic_write_npz(folder.results_path, to_flat(results))
    _write_csv(folder.file("first_vs_second.csv"), _first_vs_second(results, ident))
    if "attention" in rankings and "attention_asc" in rankings:
        cols = {**ids, **_removal_columns(rankings["attention"], "top")}
        cols.update(_removal_columns(rankings["attention_asc"], "bottom"))
        _write_csv(folder.file("dec_flip_stats.csv"), cols)
    randoms = sorted(int(n[len("random") :]) for n in random_ranking_names(list(rankings)))
    if randoms:
        cols = _random_sample_stats(results, randoms, ids)
        _write_csv(folder.file("rand_sample_stats.csv"), cols)
    if "gradient" in rankings and "grad_x_attention" in rankings:
        _write_csv(folder.file("grad_based_stats.csv"), _gradient_stats(results, ids))
    for target, filename in (
        ("rand", "rand_nontop_decflipjs.csv"),
        ("grad_rand", "rand_nontopbygrad_decflipjs.csv"),
        ("gxa_rand", "rand_nontopbygradmult_decflipjs.csv"),
    ):
        cols = _random_comparison(results.singles[target], ids)
        _write_csv(folder.file(filename), cols)

    summary = dict(summary if summary is not None else summarize(results))
    if throughput is not None:
        summary["throughput"] = dict(throughput)
    data = json.dumps(summary, indent=2, sort_keys=True, default=json_default).encode()
    atomic_write_bytes(folder.summary_path, data)
