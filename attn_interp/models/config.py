"""Model configuration: one frozen dataclass for all six attention classifiers."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

HAN_ARCHITECTURES = ("han_rnn", "han_conv", "han_noenc")
FLAN_ARCHITECTURES = ("flan_rnn", "flan_conv", "flan_noenc")
ARCHITECTURES: tuple[str, ...] = HAN_ARCHITECTURES + FLAN_ARCHITECTURES
GRU_HIDDEN_BIAS_INITS = ("lstm_hidden_bias", "zeros")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a HAN or FLAN attention classifier (paper_notes.md §1).

    arch: one of `ARCHITECTURES`, `{han,flan}_{rnn,conv,noenc}`.
    vocab_size: rows of the embedding matrix, including padding id 0 (and UNK).
    num_classes: C, the classifier's output size.
    embed_dim: word embedding size (200 in the paper).
    hidden: biGRU hidden size per direction, or conv filters per kernel width (50 in the paper).
    conv_widths: odd kernel widths of the parallel 1-D convolutions.
    word_dropout: dropout on the embeddings (HAN: before the word encoder; FLAN: before the encoder).
    sentence_dropout: dropout on the HAN sentence vectors, before the sentence encoder.
    logit_dropout: dropout on the logits (training only; paper_notes.md Q14).
    conv_dropout: dropout on the conv encoder input (training only).
    gru_hidden_bias: "lstm_hidden_bias" (the original quirk, paper_notes.md Q11) or "zeros".
    param_dtype: dtype of every parameter (use jnp.float64 under `jax.enable_x64(True)`).
    """

    arch: str
    vocab_size: int
    num_classes: int
    embed_dim: int = 200
    hidden: int = 50
    conv_widths: tuple[int, ...] = (3, 5)
    word_dropout: float = 0.444
    sentence_dropout: float = 0.220
    logit_dropout: float = 0.375
    conv_dropout: float = 0.3
    gru_hidden_bias: str = "lstm_hidden_bias"
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"ModelConfig.arch={self.arch!r} is not a known architecture; "
                f"use one of {', '.join(ARCHITECTURES)}."
            )
        for name in ("vocab_size", "num_classes", "embed_dim", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}.")
        if self.vocab_size < 2:
            raise ValueError(
                f"ModelConfig.vocab_size={self.vocab_size} leaves no room for words besides "
                "padding id 0; it must be at least 2."
            )
        widths = tuple(self.conv_widths)
        if not widths or any(not isinstance(w, int) or w < 1 or w % 2 == 0 for w in widths):
            raise ValueError(
                f"ModelConfig.conv_widths={self.conv_widths!r} must be a non-empty tuple of odd "
                "positive ints (odd widths keep 'same' padding symmetric)."
            )
        object.__setattr__(self, "conv_widths", widths)
        for name in ("word_dropout", "sentence_dropout", "logit_dropout", "conv_dropout"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"ModelConfig.{name} must lie in [0, 1), got {rate!r}.")
        if self.gru_hidden_bias not in GRU_HIDDEN_BIAS_INITS:
            raise ValueError(
                f"ModelConfig.gru_hidden_bias={self.gru_hidden_bias!r} is unknown; "
                f"use one of {GRU_HIDDEN_BIAS_INITS}."
            )

    @property
    def hierarchical(self) -> bool:
        """True for HAN (tokens `[batch, sentences, words]`), False for FLAN (`[batch, tokens]`)."""
        return self.arch.startswith("han_")

    @property
    def encoder(self) -> str:
        """The encoder kind: "rnn", "conv" or "noenc"."""
        return self.arch.split("_", 1)[1]

    def encoder_output_dim(self, input_dim: int) -> int:
        """Output size of one encoder of this config applied to `input_dim`-d inputs."""
        if self.encoder == "rnn":
            return 2 * self.hidden
        if self.encoder == "conv":
            return len(self.conv_widths) * self.hidden
        return input_dim

    @property
    def attention_dim(self) -> int:
        """d, the size of the erased attention layer's inputs (100 for rnn/conv, 200 for noenc)."""
        d = self.encoder_output_dim(self.embed_dim)
        return self.encoder_output_dim(d) if self.hierarchical else d
