"""attn_interp: is attention interpretable? Erasure tests for attention text classifiers in JAX."""

__version__ = "0.1.0"
