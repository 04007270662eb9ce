"""The six attention classifiers in PyTorch, for `benchmark_training --compare_torch` only.

Same equations as `attn_interp.models` (PyTorch's own `nn.GRU` gate order and formulas), built
from a Flax model's parameters, and run as the original AllenNLP models ran them: every biGRU on
`pack_padded_sequence` (HAN: the word level over the batch's real sentences only), masked
softmax attention, dropout where the Flax model has it. Needs the optional `bench` extra
(`pip install -e '.[bench]'`, a CPU build of torch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _t(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32))


class TorchBiGRU(nn.Module):
    """`nn.GRU` (bidirectional) on packed sequences; output `[batch, time, 2H]`, zero at padding."""

    def __init__(self, flax_gru):
        super().__init__()
        in_features, three_h = flax_gru.forward.kernel_ih[...].shape
        self.gru = nn.GRU(in_features, three_h // 3, batch_first=True, bidirectional=True)
        for suffix, d in (("l0", flax_gru.forward), ("l0_reverse", flax_gru.backward)):
            for name, value in (
                ("weight_ih", d.kernel_ih[...].T),
                ("weight_hh", d.kernel_hh[...].T),
                ("bias_ih", d.bias_ih[...]),
                ("bias_hh", d.bias_hh[...]),
            ):
                getattr(self.gru, f"{name}_{suffix}").data.copy_(_t(value))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out


class TorchConv(nn.Module):
    """Parallel `Conv1d`s ("same" padding, ReLU) on the masked, dropped-out input."""

    def __init__(self, flax_conv):
        super().__init__()
        self.dropout = nn.Dropout(flax_conv.dropout.rate)
        self.convs = nn.ModuleList()
        for c in flax_conv.convs:
            kernel = np.asarray(c.kernel[...])  # [width, in, out]
            width, in_features, out_features = kernel.shape
            conv = nn.Conv1d(in_features, out_features, width, padding=(width - 1) // 2)
            conv.weight.data.copy_(_t(kernel.transpose(2, 1, 0)))
            conv.bias.data.copy_(_t(c.bias[...]))
            self.convs.append(conv)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        x = self.dropout(x * m).transpose(1, 2)
        out = torch.cat([torch.relu(conv(x)) for conv in self.convs], dim=1)
        return out.transpose(1, 2) * m


class TorchIdentity(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x * mask.unsqueeze(-1).to(x.dtype)


def _linear(flax_linear) -> nn.Linear:
    kernel = np.asarray(flax_linear.kernel[...])
    has_bias = flax_linear.bias is not None
    layer = nn.Linear(kernel.shape[0], kernel.shape[1], bias=has_bias)
    layer.weight.data.copy_(_t(kernel.T))
    if has_bias:
        layer.bias.data.copy_(_t(flax_linear.bias[...]))
    return layer


class TorchAttention(nn.Module):
    """s_i = c . tanh(W h_i + b), then softmax over the valid items (0 where none is valid)."""

    def __init__(self, flax_attention):
        super().__init__()
        self.projection = _linear(flax_attention.projection)
        self.context = _linear(flax_attention.context)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.context(torch.tanh(self.projection(values))).squeeze(-1)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)
        return (weights.unsqueeze(-1) * values).sum(-2)


def _encoder(flax_encoder) -> nn.Module:
    name = type(flax_encoder).__name__
    if name == "BiGRU":
        return TorchBiGRU(flax_encoder)
    if name == "ConvEncoder":
        return TorchConv(flax_encoder)
    return TorchIdentity()


class TorchClassifier(nn.Module):
    """HAN or FLAN in PyTorch with the parameters of `flax_model` (an `AttentionClassifier`)."""

    def __init__(self, flax_model):
        super().__init__()
        cfg = flax_model.cfg
        self.hierarchical = cfg.hierarchical
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.embed.weight.data.copy_(_t(flax_model.embed.embedding[...]))
        self.word_dropout = nn.Dropout(cfg.word_dropout)
        if self.hierarchical:
            self.word_encoder = _encoder(flax_model.word_encoder)
            self.word_attention = TorchAttention(flax_model.word_attention)
            self.sentence_dropout = nn.Dropout(cfg.sentence_dropout)
            self.sentence_encoder = _encoder(flax_model.sentence_encoder)
            self.sentence_attention = TorchAttention(flax_model.sentence_attention)
        else:
            self.token_encoder = _encoder(flax_model.token_encoder)
            self.token_attention = TorchAttention(flax_model.token_attention)
        self.output = _linear(flax_model.output)
        self.logit_dropout = nn.Dropout(cfg.logit_dropout)

    def forward(self, tokens: np.ndarray) -> torch.Tensor:
        """tokens: numpy int `[docs, sentences, words]` or `[docs, tokens]`, real documents only."""
        if not self.hierarchical:
            toks = torch.from_numpy(np.asarray(tokens, np.int64))
            mask = toks != 0
            values = self.token_encoder(self.word_dropout(self.embed(toks)), mask)
            return self.logit_dropout(self.output(self.token_attention(values, mask)))
        tokens = np.asarray(tokens)
        sentence_mask = tokens[:, :, 0] != 0
        doc_i, sent_i = np.nonzero(sentence_mask)
        sentences = tokens[doc_i, sent_i]  # the real sentences only, [n, words]
        width = int((sentences != 0).sum(1).max())
        toks = torch.from_numpy(sentences[:, :width].astype(np.int64))
        mask = toks != 0
        h = self.word_encoder(self.word_dropout(self.embed(toks)), mask)
        vectors = self.word_attention(h, mask)
        slots = torch.zeros(tokens.shape[0], tokens.shape[1], vectors.shape[-1])
        slots = slots.index_put((torch.from_numpy(doc_i), torch.from_numpy(sent_i)), vectors)
        smask = torch.from_numpy(sentence_mask)
        values = self.sentence_encoder(self.sentence_dropout(slots), smask)
        return self.logit_dropout(self.output(self.sentence_attention(values, smask)))


def make_step(model: TorchClassifier, train_cfg):
    """A training step with the optimizer of `attn_interp.train.optim.make_tx`: clipping + Adam.

    Returns `step(tokens, labels) -> loss` (mean cross-entropy over the given documents).
    """
    opt = torch.optim.Adam(
        model.parameters(),
        lr=train_cfg.learning_rate,
        betas=(train_cfg.adam_b1, train_cfg.adam_b2),
        eps=train_cfg.adam_eps,
    )

    def step(tokens: np.ndarray, labels: np.ndarray) -> float:
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
        loss.backward()
        if train_cfg.clip == "norm":
            nn.utils.clip_grad_norm_(model.parameters(), train_cfg.clip_threshold)
        elif train_cfg.clip == "value":
            nn.utils.clip_grad_value_(model.parameters(), train_cfg.clip_threshold)
        opt.step()
        return loss.item()

    return step


def eval_loss(model: TorchClassifier, tokens: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy with dropout off (leaves the model in eval mode)."""
    model.eval()
    with torch.no_grad():
        logits = model(tokens)
        labels_t = torch.from_numpy(labels.astype(np.int64))
        return float(nn.functional.cross_entropy(logits, labels_t))
