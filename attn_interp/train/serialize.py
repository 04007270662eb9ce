"""JSON round trip of the frozen config dataclasses (tuples, dtypes) saved with every run."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
_DTYPE_KEY = "__dtype__"


def _encode(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {_DTYPE_KEY: np.dtype(value).name}
    if hasattr(value, "dtype") and type(value).__name__ == "_ScalarMeta":  # jnp.float32 etc.
        return {_DTYPE_KEY: np.dtype(value.dtype).name}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_DTYPE_KEY}:
        import jax.numpy as jnp

        return jnp.dtype(value[_DTYPE_KEY]).type
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def config_to_json(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass as a JSON-safe dict (tuples -> lists, dtypes -> {"__dtype__"})."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"config_to_json needs a dataclass instance, got {type(cfg).__name__}.")
    return {f.name: _encode(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from_json(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuilds `cls` from `config_to_json` output; unknown fields raise a ValueError naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"Saved {cls.__name__} has fields this version does not know: {unknown}. The run was "
            "written by another version of attn_interp; retrain or use that version."
        )
    return cls(**{k: _decode(v) for k, v in data.items()})
