"""Launcher flags generated from config dataclasses explain themselves (help from docstrings), and
the main job takes the same data and training flags as `experiments.train`."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Literal

import pytest
from absl import flags

from attn_interp.data import DataConfig
from attn_interp.models import ModelConfig
from attn_interp.train.config import TrainConfig
from experiments import config_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class _Documented:
    """Something configurable.

    Attributes:
      alpha: the first setting,
        continued on a second line.
      beta, gamma: two fields sharing
        one description.
      mode: how to go ("fast" or "slow").
    """

    alpha: int = 1
    beta: float | None = None
    gamma: str = "x"
    mode: Literal["fast", "slow"] = "fast"
    delta: tuple[float, float] = (0.5, 0.5)


def test_field_docs_reads_entries_shared_entries_and_continuations():
    docs = config_flags.field_docs(_Documented)
    assert docs == {
        "alpha": "the first setting, continued on a second line.",
        "beta": "two fields sharing one description.",
        "gamma": "two fields sharing one description.",
        "mode": 'how to go ("fast" or "slow").',
    }
    # The library's own style: "name: text" and "a / b: text" at the docstring's top level.
    train = config_flags.field_docs(TrainConfig)
    assert train["learning_rate"].startswith("initial Adam step size")
    assert train["lr_decay_factor"] == train["lr_decay_patience"]
    assert "Train and test are required" in config_flags.field_docs(DataConfig)["local_test"]


@pytest.mark.parametrize(
    "cls, names",
    [
        (DataConfig, None),
        (TrainConfig, None),
        (ModelConfig, config_flags.MODEL_FIELDS),
    ],
)
def test_every_field_that_becomes_a_flag_is_documented(cls, names):
    docs = config_flags.field_docs(cls)
    names = names or [f.name for f in dataclasses.fields(cls)]
    assert [n for n in names if not docs.get(n)] == []


def test_generated_flags_carry_meaning_allowed_values_and_defaults():
    fv = flags.FlagValues()
    config_flags.define_config_flags(_Documented, fv)
    assert fv["alpha"].help.startswith("the first setting, continued")
    assert "[_Documented.alpha]" in fv["alpha"].help
    assert fv["mode"].parser.enum_values == ["fast", "slow"]
    assert fv["mode"].default == "fast"
    assert fv["delta"].default == ["0.5", "0.5"]
    fv(["prog", "--mode=slow", "--delta=0.25,0.75", "--beta=2"])
    values = config_flags.config_values(_Documented, fv)
    assert values == {"alpha": 1, "beta": 2.0, "gamma": "x", "mode": "slow", "delta": (0.25, 0.75)}
    with pytest.raises(flags.IllegalFlagValueError):
        fv["mode"].parse("medium")


def _help(module: str) -> str:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # absl exits 1 after --help
    return " ".join(proc.stdout.split())


def test_help_of_the_main_job_and_train_lists_data_and_training_flags_with_their_meaning():
    reproduce, train = _help("experiments.reproduce"), _help("experiments.train")
    for text in (reproduce, train):
        # data flags, with the DataConfig docstring's meaning and allowed values
        assert '--local_path: dataset "local": one file split deterministically' in text
        assert '--bad_rows: "error" (raise, naming file and line) or "skip"' in text
        # training flags (the main job takes them too), with TrainConfig's meaning
        assert "--learning_rate: initial Adam step size" in text
        assert "--patience: stop after this many epochs" in text
        assert "--clip: <norm|value|none>" in text
        assert "--embed_dim: word embedding size" in text
    assert "--smoke" in reproduce and "--models" in reproduce
