"""Train one attention classifier and test the best checkpoint.

    python -m experiments.train --dataset=yahoo_answers_10k --model=han_rnn --workdir=/tmp/han_rnn

Defaults come from the paper's table (paper.md §1.8) for the dataset family (`--preset`, by
default guessed from `--dataset`) and architecture; every TrainConfig field has a flag that
overrides its preset value, every DataConfig field a flag of the same name. `--flagfile=x.flags`
works, later flags win. Re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from absl import app, flags, logging

from attn_interp import parallel
from attn_interp.data import DataConfig
from attn_interp.embeddings import Word2VecConfig
from attn_interp.models import ARCHITECTURES
from attn_interp.train.config import FAMILIES, TrainConfig, paper_preset, preset_for
from attn_interp.train.run import train_and_evaluate
from experiments.cli import launch

FOLDER_FLAGS = ("workdir",)  # checked before the launch

_MODEL_FIELDS = {
    "embed_dim": int,
    "hidden": int,
    "word_dropout": float,
    "sentence_dropout": float,
    "logit_dropout": float,
    "conv_dropout": float,
}
_WORD2VEC_FIXED = ("dim", "splits")  # dim = the model's embed_dim; splits: train + validation
_DEFINERS = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}


def _field_type(cls, field: dataclasses.Field) -> type:
    hint = typing.get_type_hints(cls)[field.name]
    if typing.get_origin(hint) is typing.Literal:
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Declares the launcher's flags on `fv` (generated from TrainConfig / DataConfig fields)."""
    flags.DEFINE_enum("model", "han_rnn", list(ARCHITECTURES), "Architecture.", flag_values=fv)
    flags.DEFINE_string("workdir", None, "Run folder (resumes if it holds a run).", flag_values=fv)
    flags.DEFINE_enum(
        "preset",
        None,
        list(FAMILIES),
        "Paper hyper-parameter family; default: guessed from --dataset (else yahoo).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "paper_hparams",
        False,
        "Use the paper's table exactly, without the small-corpus adjustment "
        "(attn_interp.train.config.SMALL_CORPUS_ADJUSTMENT, for training splits under "
        "SMALL_CORPUS_MAX_TRAIN_DOCS documents).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "embeddings_corpus",
        None,
        "--embeddings=word2vec: extra unlabeled UTF-8 text, one document per line.",
        flag_values=fv,
    )
    for field in dataclasses.fields(Word2VecConfig):
        if field.name not in _WORD2VEC_FIXED:
            _DEFINERS[_field_type(Word2VecConfig, field)](
                f"word2vec_{field.name}",
                field.default,
                f"--embeddings=word2vec: Word2VecConfig.{field.name}.",
                flag_values=fv,
            )
    flags.DEFINE_integer("min_count", 5, "Vocabulary: minimum token count.", flag_values=fv)
    define_parallel_flags(fv)
    for field in dataclasses.fields(TrainConfig):
        typ = _field_type(TrainConfig, field)
        _DEFINERS[typ](
            field.name, None, f"TrainConfig.{field.name} (default: preset).", flag_values=fv
        )
    for field in dataclasses.fields(DataConfig):
        typ = _field_type(DataConfig, field)
        doc = f"DataConfig.{field.name}."
        if field.name == "local_split_fractions":
            flags.DEFINE_list(field.name, [str(x) for x in field.default], doc, flag_values=fv)
        else:
            _DEFINERS[typ](field.name, field.default, doc, flag_values=fv)
    for name, typ in _MODEL_FIELDS.items():
        _DEFINERS[typ](name, None, f"ModelConfig.{name} (default: preset).", flag_values=fv)


def word2vec_from_flags(fv: flags.FlagValues = flags.FLAGS) -> Word2VecConfig:
    """The word2vec settings of the --word2vec_* flags (dim follows the model's embed_dim)."""
    return Word2VecConfig(
        **{
            f.name: fv[f"word2vec_{f.name}"].value
            for f in dataclasses.fields(Word2VecConfig)
            if f.name not in _WORD2VEC_FIXED
        }
    )


def train_docs(data_cfg: DataConfig) -> int:
    """Documents in the training split (chooses the small-corpus preset)."""
    from attn_interp.data import load_splits

    return len(load_splits(data_cfg).splits["train"])


def configs_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """(data_cfg, train_cfg, model_overrides) from parsed flags; None-valued flags keep presets."""
    data_kwargs = {}
    for field in dataclasses.fields(DataConfig):
        value = fv[field.name].value
        if field.name == "local_split_fractions":
            value = tuple(float(x) for x in value)
        data_kwargs[field.name] = value
    data_cfg = DataConfig(**data_kwargs)
    if fv.preset:
        preset = paper_preset(fv.preset, fv.model)
    else:
        preset = preset_for(
            fv.dataset, fv.model, train_docs=train_docs(data_cfg), paper=fv.paper_hparams
        )
    train_over = {
        f.name: fv[f.name].value
        for f in dataclasses.fields(TrainConfig)
        if fv[f.name].value is not None
    }
    train_cfg = dataclasses.replace(preset.train, **train_over)
    model_overrides = dataclasses.asdict(preset.dropouts)
    model_overrides.update({k: fv[k].value for k in _MODEL_FIELDS if fv[k].value is not None})
    return data_cfg, train_cfg, model_overrides


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
    data_cfg, train_cfg, model_overrides = configs_from_flags(fv)
    logging.info("train config: %s", train_cfg)
    mesh = mesh_from_flags(fv)
    if mesh is not None:
        logging.info("data parallel over %d devices", parallel.data_size(mesh))
    with parallel.use_mesh(mesh):
        final = train_and_evaluate(
            data_cfg,
            train_cfg,
            fv.workdir,
            arch=fv.model,
            model_overrides=model_overrides,
            word2vec=word2vec_from_flags(fv),
            embeddings_corpus=fv.embeddings_corpus,
            min_count=fv.min_count,
        )
    print(json.dumps(final, sort_keys=True))
    return final


if __name__ == "__main__":
    define_flags()
    app.run(launch(lambda: run(flags.FLAGS), folder_flags=FOLDER_FLAGS))
