"""Flags generated from the library's config dataclasses, shared by every launcher.

Each field of `DataConfig`, `TrainConfig`, `Word2VecConfig` (and the model fields a launcher may
override) becomes one flag whose help is the field's own description from the dataclass
docstring (`field_docs`), followed by its allowed values (`Literal` fields become enum flags) and
its default. `experiments.train` and `experiments.reproduce` define the same training flags
through `define_training_flags`; `experiments.dataset_stats`, `train` and `reproduce` the same
data flags through `define_data_flags`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from absl import flags

if typing.TYPE_CHECKING:  # the launchers import the library lazily, after parsing flags
    from attn_interp.embeddings import Word2VecConfig
    from attn_interp.train.config import TrainConfig

# Model fields a launcher may override (the rest follow from the data and the architecture).
MODEL_FIELDS = (
    "embed_dim",
    "hidden",
    "word_dropout",
    "sentence_dropout",
    "logit_dropout",
    "conv_dropout",
)
_WORD2VEC_FIXED = ("dim", "splits")  # dim = the model's embed_dim; splits: train + validation
_ENTRY = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*[,/]\s*[A-Za-z_]\w*)*):(?:\s+(.*))?$")
_SECTIONS = ("Attributes:", "Args:", "Fields:")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its description in `cls`'s docstring, whitespace collapsed.

    Understands entries "name: text", "a, b: text" and "a / b: text" (one description shared by
    several fields), with continuation lines indented deeper than the entry, either at the top
    level of the docstring or inside an "Attributes:" / "Args:" section. Fields without an entry
    are absent.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    lines = (inspect.getdoc(cls) or "").splitlines()
    docs: dict[str, str] = {}
    current: list[str] = []
    text: list[str] = []
    indent = None

    def close() -> None:
        for name in current:
            docs.setdefault(name, " ".join(" ".join(text).split()))

    for line in lines:
        if line.strip() in _SECTIONS:
            continue
        match = _ENTRY.match(line)
        names = [n.strip() for n in re.split(r"[,/]", match.group(2))] if match else []
        if match and set(names) <= fields and (indent is None or len(match.group(1)) <= indent):
            close()
            indent = len(match.group(1))
            current, text = names, [match.group(3) or ""]
        elif current and line.strip() and len(line) - len(line.lstrip()) > (indent or 0):
            text.append(line.strip())
        else:
            close()
            current, text = [], []
    close()
    return docs


def _base_type(cls: type, name: str) -> Any:
    """The field's type without `| None` (a Literal stays a Literal)."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    return hint


def flag_help(cls: type, name: str, default_text: str | None = None) -> str:
    """Help text of the flag of field `name`: its docstring description and where it comes from."""
    doc = field_docs(cls).get(name) or f"See the {cls.__name__} docstring."
    where = f"{cls.__name__}.{name}"
    return f"{doc} [{where}{'; default: ' + default_text if default_text else ''}]"


def define_config_flags(
    cls: type,
    fv: flags.FlagValues,
    *,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    preset_defaults: bool = False,
    extra_help: Mapping[str, str] | None = None,
) -> list[str]:
    """One flag per field of dataclass `cls` (named `prefix + field`); returns the flag names.

    preset_defaults: every flag defaults to None ("keep the preset's value") instead of the
      field's default. Literal fields become enum flags; tuple fields comma-separated lists.
    """
    names = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        name = prefix + field.name
        typ = _base_type(cls, field.name)
        default = None if preset_defaults else field.default
        if default is dataclasses.MISSING:
            default = None
        shown = "the preset's value" if preset_defaults else None
        help_text = flag_help(cls, field.name, shown)
        if extra_help and field.name in extra_help:
            help_text = f"{help_text} {extra_help[field.name]}"
        if typing.get_origin(typ) is typing.Literal:
            values = [str(v) for v in typing.get_args(typ)]
            flags.DEFINE_enum(name, default, values, help_text, flag_values=fv)
        elif typing.get_origin(typ) is tuple:
            listed = None if default is None else [str(v) for v in default]
            flags.DEFINE_list(name, listed, help_text, flag_values=fv)
        else:
            definer = {
                bool: flags.DEFINE_bool,
                int: flags.DEFINE_integer,
                float: flags.DEFINE_float,
            }.get(typ, flags.DEFINE_string)
            definer(name, default, help_text, flag_values=fv)
        names.append(name)
    return names


def flag_values(fv: flags.FlagValues, names: Iterable[str], *, prefix: str = "") -> dict[str, Any]:
    """{name: value} of the flags `prefix + name` (list flags become tuples of floats)."""
    values = {n: fv[prefix + n].value for n in names}
    return {n: tuple(float(x) for x in v) if isinstance(v, list) else v for n, v in values.items()}


def config_values(cls: type, fv: flags.FlagValues) -> dict[str, Any]:
    """{field: value} of the flags `define_config_flags` made for `cls`."""
    return flag_values(fv, (f.name for f in dataclasses.fields(cls)))


# ---------------------------------------------------------------------------------------------
# Data flags.


def define_data_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per `DataConfig` field, plus --min_count (the vocabulary threshold)."""
    from attn_interp.data import DataConfig, available_datasets

    define_config_flags(
        DataConfig,
        fv,
        extra_help={"dataset": f"Registered: {', '.join(available_datasets())}."},
    )
    flags.DEFINE_integer(
        "min_count",
        5,
        "Vocabulary: keep tokens seen at least this often in train + validation.",
        flag_values=fv,
    )


def data_config_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """The `DataConfig` given by the data flags."""
    from attn_interp.data import DataConfig

    return DataConfig(**config_values(DataConfig, fv))


# ---------------------------------------------------------------------------------------------
# Training flags.


def define_training_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """The preset choice, one flag per `TrainConfig` field and overridable model field (default:
    the preset's value), and the word2vec settings."""
    from attn_interp.embeddings import Word2VecConfig
    from attn_interp.models import ModelConfig
    from attn_interp.train.config import FAMILIES, TrainConfig

    flags.DEFINE_enum(
        "preset",
        None,
        list(FAMILIES),
        "Paper hyper-parameter family; default: chosen from --dataset (else yahoo).",
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
    flags.DEFINE_integer(
        "batch_scale",
        1,
        "Accelerators: batches this many times larger (documents and padded cells) with the "
        "learning rate times sqrt(batch_scale) (attn_interp.train.config.scale_batch); 1 = the "
        "paper's batches. Applied after the other training flags.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "embeddings_corpus",
        None,
        "--embeddings=word2vec: extra unlabeled UTF-8 text, one document per line.",
        flag_values=fv,
    )
    define_config_flags(TrainConfig, fv, preset_defaults=True)
    model_skip = tuple(
        f.name for f in dataclasses.fields(ModelConfig) if f.name not in MODEL_FIELDS
    )
    define_config_flags(ModelConfig, fv, skip=model_skip, preset_defaults=True)
    define_config_flags(
        Word2VecConfig,
        fv,
        prefix="word2vec_",
        skip=_WORD2VEC_FIXED,
        preset_defaults=True,
        extra_help={
            f.name: "(with --embeddings=word2vec)" for f in dataclasses.fields(Word2VecConfig)
        },
    )


class TrainingSettings(NamedTuple):
    """What the training flags give for one model: `TrainConfig`, the model fields to override
    (dropouts, sizes) and the word2vec settings (used when `train.embeddings` is "word2vec")."""

    train: TrainConfig
    model_overrides: dict[str, Any]
    word2vec: Word2VecConfig


def _given(fv: flags.FlagValues, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """`flag_values` of the flags that are set (None = keep the preset's value)."""
    return {n: v for n, v in flag_values(fv, names, prefix=prefix).items() if v is not None}


def training_settings(
    fv: flags.FlagValues, dataset: str, arch: str, train_docs: int, base: Mapping[str, Any] = ()
) -> TrainingSettings:
    """The settings of `arch` on `dataset`: the preset (--preset family, else chosen from the
    dataset and its `train_docs`), then `base` (launcher defaults such as smoke mode's), then every
    training and --word2vec_* flag given on the command line."""
    from attn_interp.embeddings import Word2VecConfig
    from attn_interp.train.config import TrainConfig, paper_preset, preset_for, scale_batch

    if fv["preset"].value:
        preset = paper_preset(fv["preset"].value, arch)
    else:
        preset = preset_for(dataset, arch, train_docs=train_docs, paper=fv["paper_hparams"].value)
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    chosen = dict(base)
    chosen.update(_given(fv, (*train_names, *MODEL_FIELDS)))
    train_cfg = dataclasses.replace(
        preset.train, **{k: v for k, v in chosen.items() if k in train_names}
    )
    train_cfg = scale_batch(train_cfg, fv["batch_scale"].value)
    model_overrides = dataclasses.asdict(preset.dropouts)
    model_overrides.update({k: v for k, v in chosen.items() if k in MODEL_FIELDS})
    w2v_names = [
        f.name for f in dataclasses.fields(Word2VecConfig) if f.name not in _WORD2VEC_FIXED
    ]
    word2vec = dataclasses.replace(preset.word2vec, **_given(fv, w2v_names, prefix="word2vec_"))
    return TrainingSettings(train_cfg, model_overrides, word2vec)
