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

from attn_interp.erasure.summary import summarize
from attn_interp.io_utils import atomic_write_bytes, atomic_write_npz

_SINGLE_NAMES = (("top", "highest"), ("second", "2ndhighest"))


def _write_csv(path: str, columns: dict[str, np.ndarray]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    cols = [np.asarray(c).tolist() for c in columns.values()]
    writer.writerows(zip(*cols, strict=True))
    atomic_write_bytes(path, text.getvalue().encode())


def _removal_columns(results, ranking: str, suffix: str) -> dict[str, np.ndarray]:
    return {
        f"needed_to_rem_x_items_for_decflip_{suffix}": results[f"rank_{ranking}_k"],
        f"needed_to_rem_x_probmass_for_decflip_{suffix}": results[f"rank_{ranking}_probmass"],
        f"needed_to_rem_frac_x_for_decflip_{suffix}": results[f"rank_{ranking}_frac"],
    }


def _single_columns(results, target: str, suffix: str) -> dict[str, np.ndarray]:
    return {
        f"kl_{suffix}": results[f"single_{target}_kl"],
        f"js_{suffix}": results[f"single_{target}_js"],
        f"dec_flip_{suffix}": results[f"single_{target}_flip"],
    }


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def write_outputs(
    results: Mapping[str, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    summary: dict | None = None,
    throughput: Mapping[str, float] | None = None,
) -> None:
    """Write `results.npz`, the original-style CSVs and `summary.json` into `out_dir`.

    CSVs (paper.md 9.3): first_vs_second.csv, dec_flip_stats.csv, rand_sample_stats.csv,
    grad_based_stats.csv, rand_nontop_decflipjs.csv, rand_nontopbygrad_decflipjs.csv,
    rand_nontopbygradmult_decflipjs.csv. A CSV whose rankings were not computed is skipped.
    `summary` defaults to `summarize(results)`; `throughput` is stored under "throughput".
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    results = {k: np.asarray(v) for k, v in results.items()}
    ident = {"id": results["doc_id"] + 1}
    seq = {"seq_len": results["seq_len"]}

    atomic_write_npz(os.path.join(out_dir, "results.npz"), results)

    first = dict(ident)
    for target, suffix in (*_SINGLE_NAMES, ("lowest", "lowest"), ("second_lowest", "2ndlowest")):
        first.update(_single_columns(results, target, suffix))
    _write_csv(os.path.join(out_dir, "first_vs_second.csv"), first)

    if "rank_attention_k" in results and "rank_attention_asc_k" in results:
        cols = {**ident, **seq}
        cols.update(_removal_columns(results, "attention", "top"))
        cols.update(_removal_columns(results, "attention_asc", "bottom"))
        _write_csv(os.path.join(out_dir, "dec_flip_stats.csv"), cols)

    randoms = sorted(
        int(k[len("rank_random") : -2])
        for k in results
        if k.startswith("rank_random") and k.endswith("_k") and k[11:-2].isdigit()
    )
    if randoms:
        cols = {**ident, **seq}
        for group, key in (
            ("attn_weight_extracted", "weight"),
            ("kl_div", "kl"),
            ("js_div", "js"),
        ):
            for i in randoms:
                cols[f"{group}_{i}"] = results[f"single_random{i}_first_{key}"]
        for group, key in (
            ("needed_to_rem_x_items_for_decflip", "k"),
            ("needed_to_rem_x_probmass_for_decflip", "probmass"),
            ("needed_to_rem_frac_x_for_decflip", "frac"),
        ):
            for i in randoms:
                cols[f"{group}_{i}"] = results[f"rank_random{i}_{key}"]
        _write_csv(os.path.join(out_dir, "rand_sample_stats.csv"), cols)

    if "rank_gradient_k" in results and "rank_grad_x_attention_k" in results:
        cols = {**ident, **seq}
        cols.update(_removal_columns(results, "gradient", "grad"))
        cols.update(_removal_columns(results, "grad_x_attention", "gradmult"))
        for prefix, suffix in (("grad_", "plaingrad"), ("gxa_", "gradmult")):
            for target, name in _SINGLE_NAMES:
                cols.update(_single_columns(results, prefix + target, f"{name}_{suffix}"))
        _write_csv(os.path.join(out_dir, "grad_based_stats.csv"), cols)

    for target, filename in (
        ("rand", "rand_nontop_decflipjs.csv"),
        ("grad_rand", "rand_nontopbygrad_decflipjs.csv"),
        ("gxa_rand", "rand_nontopbygradmult_decflipjs.csv"),
    ):
        flip = results[f"single_{target}_flip"]
        cols = {**ident, **seq}
        cols["not_negone_if_rand_caused_decflip"] = np.where(flip != -1, 1, -1)
        cols["zeroed_weight"] = results[f"single_{target}_weight"]
        cols["rand_kl_div"] = results[f"single_{target}_kl"]
        cols["rand_js_div"] = results[f"single_{target}_js"]
        cols["rand_index"] = results[f"single_{target}_index"]
        _write_csv(os.path.join(out_dir, filename), cols)

    summary = dict(summary if summary is not None else summarize(results))
    if throughput is not None:
        summary["throughput"] = dict(throughput)
    data = json.dumps(summary, indent=2, sort_keys=True, default=_json_default).encode()
    atomic_write_bytes(os.path.join(out_dir, "summary.json"), data)
