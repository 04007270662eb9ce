"""HAN / FLAN attention classifiers (biGRU, conv or no encoder) with an explicit affine head.

The erasure engine uses `model.encode(tokens)` -> AttentionInputs of the erased layer, and
`model.head(values, weights)` / `model.head_params()` for the post-attention classifier.
"""

from attn_interp.models.attention import AdditiveAttention, masked_softmax, weighted_sum
from attn_interp.models.classifier import AttentionClassifier, make_model
from attn_interp.models.config import ARCHITECTURES, ModelConfig
from attn_interp.models.encoders import ConvEncoder, IdentityEncoder, make_encoder, packing_gap
from attn_interp.models.gru import BiGRU, GRUDirection, bigru_scan, gru_scan
from attn_interp.models.word_vectors import load_word_vectors

__all__ = [
    "ARCHITECTURES",
    "AdditiveAttention",
    "AttentionClassifier",
    "BiGRU",
    "ConvEncoder",
    "GRUDirection",
    "IdentityEncoder",
    "ModelConfig",
    "bigru_scan",
    "gru_scan",
    "load_word_vectors",
    "make_encoder",
    "make_model",
    "packing_gap",
    "masked_softmax",
    "weighted_sum",
]
