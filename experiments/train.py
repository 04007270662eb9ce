"""Train one attention classifier and test the best checkpoint.

    python -m experiments.train --dataset=yahoo_answers_10k --model=han_rnn --workdir=/tmp/han_rnn

Defaults come from the paper's table (paper_notes.md §1.8) for the dataset family (`--preset`, by
default guessed from `--dataset`) and architecture; every TrainConfig field has a flag that
overrides its preset value, every DataConfig field a flag of the same name. `--flagfile=x.flags`
works, later flags win. Re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from attn_interp import parallel
from attn_interp.data import DataConfig
from attn_interp.models import ARCHITECTURES
from attn_interp.train.run import train_and_evaluate
from experiments import config_flags
from experiments.cli import launch

FOLDER_FLAGS = ("workdir",)  # checked before the launch


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Declares the launcher's flags on `fv`: --model, --workdir, the training flags shared with
    `experiments.reproduce` (one per TrainConfig / model / word2vec field), the data flags (one per
    DataConfig field) and the parallelism flags."""
    flags.DEFINE_enum("model", "han_rnn", list(ARCHITECTURES), "Architecture.", flag_values=fv)
    flags.DEFINE_string("workdir", None, "Run folder (resumes if it holds a run).", flag_values=fv)
    config_flags.define_training_flags(fv)
    config_flags.define_data_flags(fv)
    define_parallel_flags(fv)


def train_docs(data_cfg: DataConfig) -> int:
    """Documents in the training split (chooses the small-corpus preset)."""
    from attn_interp.data import load_splits

    return len(load_splits(data_cfg).splits["train"])


def configs_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """(data_cfg, `config_flags.TrainingSettings`) from parsed flags; None-valued flags keep
    presets."""
    data_cfg = config_flags.data_config_from_flags(fv)
    settings = config_flags.training_settings(fv, fv.dataset, fv.model, train_docs(data_cfg))
    return data_cfg, settings


def define_parallel_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """--data_parallel and the multi-host flags of `jax.distributed.initialize`."""
    flags.DEFINE_bool(
        "data_parallel",
        True,
        "With more than one device: data parallelism over all of them (batch sharded over a "
        "'data' mesh axis, parameters replicated). One device: the single-device path.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "Multi-host: HOST:PORT of process 0 (calls jax.distributed.initialize).",
        flag_values=fv,
    )
    flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "Multi-host: rank of this process.", flag_values=fv)


def mesh_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """Initialises multi-host JAX if flags name a coordinator; the data mesh, or None (1 device)."""
    import jax

    parallel.initialize_distributed(
        parallel.DistributedConfig(
            coordinator_address=fv.coordinator_address,
            num_processes=fv.num_processes,
            process_id=fv.process_id,
        )
    )
    if not fv.data_parallel or jax.device_count() == 1:
        return None
    return parallel.data_mesh()


def run(fv: flags.FlagValues = flags.FLAGS) -> dict:
    """Trains and tests per the parsed flags; returns (and prints) the final.json content."""
    if not fv.workdir:
        raise app.UsageError("--workdir is required (the run folder).")
    data_cfg, settings = configs_from_flags(fv)
    logging.info("train config: %s", settings.train)
    mesh = mesh_from_flags(fv)
    if mesh is not None:
        logging.info("data parallel over %d devices", parallel.data_size(mesh))
    with parallel.use_mesh(mesh):
        final = train_and_evaluate(
            data_cfg,
            settings.train,
            fv.workdir,
            arch=fv.model,
            model_overrides=settings.model_overrides,
            word2vec=settings.word2vec,
            embeddings_corpus=fv.embeddings_corpus,
            min_count=fv.min_count,
        )
    print(json.dumps(final, sort_keys=True))
    return final


if __name__ == "__main__":
    define_flags()
    flags.adopt_module_key_flags(config_flags)  # list the generated flags in --help
    app.run(launch(lambda: run(flags.FLAGS), folder_flags=FOLDER_FLAGS))
