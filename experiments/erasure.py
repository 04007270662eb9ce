"""Run the erasure tests on a trained model and print the headline numbers.

    python -m experiments.erasure --workdir=/tmp/han_rnn
    python -m experiments.erasure --workdir=/tmp/flan_rnn --random_mode=code_compatible --max_docs=500

Writes ``WORKDIR/erasure/`` (or ``--out_dir``): results.npz, the original code's CSVs, summary.json,
documents.jsonl and manifest.json (`attn_interp.erasure.evaluate`). Work is saved shard by shard:
re-running the same command after an interruption resumes; different settings against existing
results are refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

from absl import app, flags

from attn_interp.erasure import ErasureConfig
from attn_interp.erasure.config import METHODS, RANDOM_MODES
from attn_interp.erasure.evaluate import evaluate_run, load_erasure_results
from experiments.cli import launch

FOLDER_FLAGS = ("workdir", "out_dir")  # checked before the launch


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Declares the launcher's flags on `fv`."""
    flags.DEFINE_string("workdir", None, "Training run folder.", flag_values=fv)
    flags.DEFINE_string("out_dir", None, "Output folder (default WORKDIR/erasure).", flag_values=fv)
    flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to load.", flag_values=fv)
    flags.DEFINE_enum("split", "test", ["test", "validation", "train"], "Split.", flag_values=fv)
    flags.DEFINE_enum(
        "random_mode",
        "paper",
        list(RANDOM_MODES),
        "Random comparison item: 'paper' (uniform over items other than the top one) or "
        "'code_compatible' (the original code's quirk, paper_notes.md Q1).",
        flag_values=fv,
    )
    flags.DEFINE_integer("num_random", 5, "Random removal orderings.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Base seed of the per-document random draws.", flag_values=fv)
    flags.DEFINE_integer("max_docs", None, "Only the first N documents.", flag_values=fv)
    flags.DEFINE_float("memory_budget_gb", 2.0, "Engine working-set budget (GB).", flag_values=fv)
    flags.DEFINE_integer("shard_docs", 512, "Documents per saved shard.", flag_values=fv)
    flags.DEFINE_enum("method", "auto", list(METHODS), "Erasure computation.", flag_values=fv)
    flags.DEFINE_bool(
        "aopc", True, "Output-probability curves and AOPC along every ranking.", flag_values=fv
    )
    flags.DEFINE_bool(
        "sufficiency", True, "Keep-only-the-top-k curves too (needs --aopc).", flag_values=fv
    )
    flags.DEFINE_bool(
        "minimum_flip_set",
        True,
        "Exact minimum flip set and optimality gaps (affine heads).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "overwrite", False, "Delete earlier results in the output folder first.", flag_values=fv
    )
    flags.DEFINE_bool("progress", True, "Show a progress bar.", flag_values=fv)
    flags.DEFINE_bool(
        "data_parallel",
        True,
        "With more than one local device: split each batch's documents over all of them "
        "(results are identical to one device).",
        flag_values=fv,
    )


def config_from_flags(fv: flags.FlagValues = flags.FLAGS) -> ErasureConfig:
    """The `ErasureConfig` given by the parsed flags."""
    if fv.memory_budget_gb <= 0:
        raise app.UsageError(f"--memory_budget_gb must be positive, got {fv.memory_budget_gb}.")
    return ErasureConfig(
        random_mode=fv.random_mode,
        num_random=fv.num_random,
        seed=fv.seed,
        method=fv.method,
        memory_budget_bytes=int(fv.memory_budget_gb * 1e9),
        aopc=fv.aopc,
        sufficiency=fv.sufficiency and fv.aopc,
        minimum_flip_set=fv.minimum_flip_set,
    )


def _pct(x) -> str:
    return "  n/a" if x is None else f"{x:5.1f}"


def _share(x) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def format_headline(summary: dict) -> str:
    """A short text table: counts, accuracy, Table 2, never-flip shares, exact-optimal shares."""
    counts = summary["counts"]
    model = summary.get("model", {})
    lines = [
        f"documents: {counts['total']} (n > 1: {counts['included_n_gt_1']}, n = 1: "
        f"{counts['excluded_n_eq_1']}); model accuracy {100 * model.get('accuracy', float('nan')):.2f}%"
        f"; Q10 mismatches {summary.get('q10_prediction_mismatch', 'n/a')}"
        f"; all out of vocabulary {model.get('all_unknown_documents', 'n/a')}",
        "",
        "Table 2 (% of n > 1)   both  only_top  only_rand  neither",
    ]
    for name, cells in summary["table2_percent"].items():
        lines.append(
            f"  {name:<20} {_pct(cells['both'])}     {_pct(cells['only_top'])}      "
            f"{_pct(cells['only_random'])}    {_pct(cells['neither'])}"
        )
    exact = summary.get("minimum_flip_set", {}).get("per_ranking", {})
    lines += ["", "ranking               never-flip  exact-optimal"]
    for name, share in summary["never_flip_share"].items():
        opt = exact.get(name, {}).get("optimal_share")
        lines.append(f"  {name:<20} {_share(share):>10}  {_share(opt):>12}")
    if "minimum_flip_set" in summary:
        lines.append(
            f"  {'minimum flip set':<20} {_share(summary['minimum_flip_set']['never_flip_share']):>10}"
        )
    tp = summary.get("throughput", {})
    if tp:
        ratio = tp.get("erasure_over_encode")
        lines += [
            "",
            f"throughput: {tp.get('documents_per_second') or 0:.1f} docs/s, "
            f"{tp.get('evaluations_per_second') or 0:.3g} evaluations/s; erasure time / encoder "
            f"time = {'n/a' if ratio is None else f'{ratio:.3f}'}",
        ]
    return "\n".join(lines)


def run(fv: flags.FlagValues = flags.FLAGS) -> str:
    """Runs the erasure tests per the parsed flags; prints and returns the output folder."""
    if not fv.workdir:
        raise app.UsageError("--workdir is required (the training run folder).")
    import jax

    from attn_interp import parallel

    local = jax.local_devices()
    mesh = parallel.data_mesh(local) if fv.data_parallel and len(local) > 1 else None
    out_dir = evaluate_run(
        fv.workdir,
        config_from_flags(fv),
        split=fv.split,
        max_docs=fv.max_docs,
        out_dir=fv.out_dir,
        shard_docs=fv.shard_docs,
        progress=fv.progress,
        which=fv.which,
        overwrite=fv.overwrite,
        mesh=mesh,
    )
    _, summary = load_erasure_results(out_dir)
    print(f"erasure outputs: {out_dir}")
    print(format_headline(summary))
    return out_dir


if __name__ == "__main__":
    define_flags()
    app.run(launch(lambda: run(flags.FLAGS), folder_flags=FOLDER_FLAGS))
