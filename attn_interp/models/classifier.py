"""HAN and FLAN attention classifiers with an explicit affine head (paper_notes.md §1.2-1.6, §2).

The erased attention layer is the sentence attention for HAN and the token attention for FLAN.
`encode` returns its inputs, `head` is the post-attention computation as a function of explicit
weights (no renormalisation inside), so erasures and gradients w.r.t. the weights only re-run it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attn_interp.models.attention import (
    AdditiveAttention,
    masked_softmax,
    segment_softmax,
    segment_weighted_sum,
    weighted_sum,
)
from attn_interp.models.config import ModelConfig
from attn_interp.models.dropout import Dropout
from attn_interp.models.encoders import make_encoder
from attn_interp.types import AttentionInputs, PackedSentences

Tokens = jax.Array | PackedSentences


class AttentionClassifier(nnx.Module):
    """Embedding -> encoder(s) -> additive attention -> one affine layer (logit dropout in training).

    `hierarchical` is True for HAN (tokens int `[batch, sentences, words]`) and False for FLAN
    (tokens int `[batch, tokens]`). Token id 0 is padding; a HAN sentence exists iff its first
    token is non-zero. Like every NNX module the model starts in training mode (dropout on): call
    `model.eval()` for deterministic outputs and `model.train()` to switch back.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, embeddings: np.ndarray | None = None):
        self.cfg = cfg
        self.hierarchical = cfg.hierarchical
        dtype = cfg.param_dtype
        if embeddings is None:
            embed_init = jax.nn.initializers.xavier_uniform()
            table = embed_init(rngs.params(), (cfg.vocab_size, cfg.embed_dim), dtype)
            table = table.at[0].set(0.0)
        else:
            embeddings = np.asarray(embeddings)
            expected = (cfg.vocab_size, cfg.embed_dim)
            if embeddings.shape != expected:
                raise ValueError(
                    f"embeddings have shape {embeddings.shape}, but the config needs "
                    f"[vocab_size, embed_dim] = {expected}; rebuild the matrix for this vocabulary "
                    "or change ModelConfig."
                )
            if not np.all(np.isfinite(embeddings)):
                raise ValueError("embeddings contain NaN or inf values.")
            table = jnp.asarray(embeddings, dtype)
        self.embed = nnx.Embed(
            cfg.vocab_size,
            cfg.embed_dim,
            param_dtype=dtype,
            embedding_init=lambda *_: table,
            rngs=rngs,
        )
        self.word_dropout = Dropout(cfg.word_dropout, rngs=rngs)
        d_word = cfg.encoder_output_dim(cfg.embed_dim)
        if self.hierarchical:
            self.word_encoder = make_encoder(cfg.embed_dim, cfg, rngs=rngs)
            self.word_attention = AdditiveAttention(d_word, rngs=rngs, param_dtype=dtype)
            self.sentence_dropout = Dropout(cfg.sentence_dropout, rngs=rngs)
            self.sentence_encoder = make_encoder(d_word, cfg, rngs=rngs)
            d_out = cfg.encoder_output_dim(d_word)
            self.sentence_attention = AdditiveAttention(d_out, rngs=rngs, param_dtype=dtype)
        else:
            self.token_encoder = make_encoder(cfg.embed_dim, cfg, rngs=rngs)
            d_out = d_word
            self.token_attention = AdditiveAttention(d_out, rngs=rngs, param_dtype=dtype)
        self.output = nnx.Linear(
            d_out,
            cfg.num_classes,
            kernel_init=jax.nn.initializers.xavier_uniform(),
            bias_init=jax.nn.initializers.zeros,
            param_dtype=dtype,
            rngs=rngs,
        )
        self.logit_dropout = Dropout(cfg.logit_dropout, rngs=rngs)

    def _check_tokens(self, tokens: Tokens) -> Tokens:
        if isinstance(tokens, PackedSentences):
            if not self.hierarchical:
                raise ValueError(
                    f"{self.cfg.arch} is a FLAN model; PackedSentences are for HAN models."
                )
            return PackedSentences(*(jnp.asarray(a) for a in tokens))
        tokens = jnp.asarray(tokens)
        want = 3 if self.hierarchical else 2
        if tokens.ndim != want:
            layout = "[batch, sentences, words]" if self.hierarchical else "[batch, tokens]"
            raise ValueError(
                f"{self.cfg.arch} expects tokens of rank {want} ({layout}), got shape "
                f"{tokens.shape}; build batches for the {'HAN' if self.hierarchical else 'FLAN'} "
                "layout."
            )
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}.")
        return tokens

    def encode(self, tokens: Tokens) -> AttentionInputs:
        """Runs everything up to the erased attention layer.

        tokens: int `[batch, sentences, words]` (HAN) or `[batch, tokens]` (FLAN), or for HAN the
        same documents as `PackedSentences` (the fast layout for training; equal results).
        Returns AttentionInputs with values `[batch, n, d]` (zero at padding), scores `[batch, n]`
        and mask bool `[batch, n]`; n = sentences (HAN) or tokens (FLAN).
        """
        tokens = self._check_tokens(tokens)
        if not self.hierarchical:
            mask = tokens != 0
            x = self.word_dropout(self.embed(tokens))
            values = self.token_encoder(x, mask)
            return AttentionInputs(values, self.token_attention(values), mask)
        if isinstance(tokens, PackedSentences):
            sentence_vectors, sentence_mask = self._packed_sentence_vectors(tokens)
        else:
            sentence_vectors, sentence_mask = self._sentence_vectors(tokens)
        sentence_vectors = self.sentence_dropout(sentence_vectors)
        values = self.sentence_encoder(sentence_vectors, sentence_mask)
        return AttentionInputs(values, self.sentence_attention(values), sentence_mask)

    def _sentence_vectors(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        """tokens `[batch, sentences, words]` -> (sentence vectors `[batch, sentences, d]`, mask)."""
        batch, sentences, words = tokens.shape
        sentence_mask = tokens[:, :, 0] != 0
        word_mask = (tokens != 0) & sentence_mask[:, :, None]
        x = self.word_dropout(self.embed(tokens))
        flat_mask = word_mask.reshape(batch * sentences, words)
        h_words = self.word_encoder(x.reshape(batch * sentences, words, -1), flat_mask)
        word_weights = masked_softmax(self.word_attention(h_words), flat_mask)
        vectors = weighted_sum(h_words, word_weights).reshape(batch, sentences, -1)
        return vectors, sentence_mask

    def _packed_sentence_vectors(self, packed: PackedSentences) -> tuple[jax.Array, jax.Array]:
        """The word level on packed rows: only real tokens are encoded; each sentence's vector is
        its own attention-weighted sum, scattered to its `[batch, sentences]` slot."""
        batch, sentences = packed.sentence_mask.shape
        slots = batch * sentences
        mask = (packed.words != 0) & (packed.segment < slots)
        x = self.word_dropout(self.embed(packed.words))
        h_words = self.word_encoder(x, mask, segment=packed.segment)
        items = jnp.where(mask, packed.segment, slots)  # masked words are in no sentence
        word_weights = segment_softmax(self.word_attention(h_words), items, slots)
        vectors = segment_weighted_sum(h_words, word_weights, items, slots)
        return vectors.reshape(batch, sentences, -1), packed.sentence_mask

    def head(self, values: jax.Array, weights: jax.Array) -> jax.Array:
        """Post-attention classifier on explicit weights (no renormalisation inside).

        values `[batch, n, d]`, weights `[batch, n]` -> logits `[batch, C]`
        = (sum_i weights_i values_i) @ W + b, with dropout on the logits in training mode.
        """
        return self.logit_dropout(self.output(weighted_sum(values, weights)))

    def head_params(self) -> tuple[jax.Array, jax.Array]:
        """(W `[d, C]`, b `[C]`) such that eval-mode `head(v, w) == (w[..., None] * v).sum(1) @ W + b`."""
        return self.output.kernel[...], self.output.bias[...]

    def attention(self, tokens: Tokens) -> jax.Array:
        """Weights `[batch, n]` of the erased attention layer (zero at padding)."""
        inputs = self.encode(tokens)
        return masked_softmax(inputs.scores, inputs.mask)

    def __call__(self, tokens: Tokens) -> jax.Array:
        """tokens -> logits `[batch, C]` = head(values, masked_softmax(scores, mask))."""
        inputs = self.encode(tokens)
        return self.head(inputs.values, masked_softmax(inputs.scores, inputs.mask))


def make_model(
    cfg: ModelConfig, *, rngs: nnx.Rngs, embeddings: np.ndarray | None = None
) -> AttentionClassifier:
    """Builds the classifier for `cfg.arch`.

    embeddings: optional initial embedding matrix `[vocab_size, embed_dim]` (e.g. from
    `load_word_vectors`); otherwise xavier-uniform with a zero padding row. Embeddings are trainable.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"make_model needs a ModelConfig, got {type(cfg).__name__}.")
    return AttentionClassifier(cfg, rngs=rngs, embeddings=embeddings)
