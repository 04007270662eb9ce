"""The orderings' sorts against numpy's stable sorts: every argsort path (counting, radix, lax,
whatever `stable_argsort` picks) on keys with many exact ties, float32 and float64 descending
orders with signed zeros and padding, n = 1 and 2; and the jitted programs that sort hold no host
callback (JAX's persistent compilation cache cannot store those)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_inputs

from attn_interp.erasure import ErasureConfig, run_suite, suite
from attn_interp.erasure.min_flip import minimum_flip_set_from_z
from attn_interp.erasure.sorting import (
    counting_stable_argsort,
    descending_order,
    lax_stable_argsort,
    radix_stable_argsort,
    sort_descending_values,
    sort_last_axis,
    stable_argsort,
)
from attn_interp.followups.agreement import rank_agreement

_ARGSORTS = {
    "picked": jax.jit(stable_argsort),
    "vmapped": jax.jit(jax.vmap(stable_argsort)),
    "counting": jax.jit(counting_stable_argsort),
    "radix": jax.jit(radix_stable_argsort),
    "lax": jax.jit(lax_stable_argsort),
}


@pytest.mark.parametrize("n", [1, 2, 32, 33, 300])
def test_stable_argsorts_equal_numpy_with_ties(n):
    rng = np.random.default_rng(n)
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    extremes = np.asarray([hi, lo, 0, -1, 65535, 65536, -65536, -65537], np.int64)
    for distinct in (2, 5, 70_000, 2**31):  # 70,000: ties in the low and high 16 bits apart
        keys = rng.integers(-distinct, distinct, size=(4, 3, n), dtype=np.int64)
        keys[:, 0] = rng.choice(extremes, size=n)  # and keys at the ends of the int32 range
        keys = np.clip(keys, lo, hi).astype(np.int32)
        want = np.argsort(keys, axis=-1, kind="stable")
        for name, fn in _ARGSORTS.items():
            np.testing.assert_array_equal(fn(jnp.asarray(keys)), want, err_msg=(name, distinct))
        np.testing.assert_array_equal(jax.jit(sort_last_axis)(keys), np.sort(keys, axis=-1))


def _tied_scores(rng, shape, dtype):
    """Scores from a few values (exact ties, both signed zeros, neighbours one ulp apart) and a
    mask with padding inside and after the valid items. (No subnormals: XLA:CPU flushes them to
    zero, so they tie with 0.)"""
    pool = np.asarray([-0.0, 0.0, 0.25, -0.25, 1e-30, 3.0, -7.5, 1.0, 1.0 + 2.0**-23], np.float64)
    scores = rng.choice(pool, size=shape).astype(dtype)
    mask = rng.random(shape) < 0.8
    return scores, mask


def _numpy_descending(scores, mask):
    """Descending scores (-0.0 = 0.0), ties by position, padding last: Python's stable sort."""
    n = scores.shape[-1]
    rows = zip(scores.reshape(-1, n), mask.reshape(-1, n), strict=True)
    order = [
        sorted(range(n), key=lambda i, s=s, m=m: (not m[i], -float(s[i]) if m[i] else 0.0))
        for s, m in rows
    ]
    return np.asarray(order).reshape(scores.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 9, 45])
def test_descending_order_equals_a_stable_sort_with_ties_and_padding(dtype, n):
    rng = np.random.default_rng(n)
    scores, mask = _tied_scores(rng, (6, 2, n), dtype)
    want = _numpy_descending(scores, mask)
    with jax.enable_x64(dtype == np.float64):
        got = jax.jit(descending_order)(jnp.asarray(scores), jnp.asarray(mask))
        assert got.dtype == jnp.int32
        np.testing.assert_array_equal(got, want)
        padded = np.where(mask, scores, -np.inf).astype(dtype)
        values = jax.jit(sort_descending_values)(jnp.asarray(padded))
        np.testing.assert_array_equal(values, -np.sort(-padded, axis=-1))


def _callback_free(jitted, *args, **kwargs) -> str:
    text = jitted.lower(*args, **kwargs).as_text()
    assert "callback" not in text.lower()
    return text


class _Lowered(Exception):
    """Stops `run_suite` once its kernel is lowered (compiling and running it is not needed)."""


def test_the_suite_and_agreement_programs_hold_no_host_callback(monkeypatch):
    values, scores, mask, w, bias = make_inputs(3, jnp.float32, n=40)  # radix sorts on CPU
    texts, kernel = [], suite._suite_kernel

    def lower_only(*args, **kwargs):
        texts.append(_callback_free(kernel, *args, **kwargs))
        raise _Lowered

    with monkeypatch.context() as patch:
        patch.setattr(suite, "_suite_kernel", lower_only)
        with pytest.raises(_Lowered):
            run_suite(values, scores, mask, affine=(w, bias), config=ErasureConfig(num_random=1))
    assert len(texts) == 1 and "sort" in texts[0]
    z = jnp.einsum("bnd,dc->bnc", values, w)
    alpha = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)
    predicted = jnp.zeros(mask.shape[0], jnp.int32)
    _callback_free(jax.jit(minimum_flip_set_from_z), z, alpha, mask, bias, predicted)
    others = jnp.stack([scores, -scores], axis=1)
    _callback_free(jax.jit(rank_agreement), alpha, others, mask)
