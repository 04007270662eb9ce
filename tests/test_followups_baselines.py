"""Weight baselines: replacement weights and the head's outputs against a numpy reference."""

import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.config import AffineParams
from attn_interp.followups import weight_baselines
from attn_interp.followups.weight_baselines import permuted_weights
from attn_interp.models.attention import masked_softmax


def _problem(seed=0, b=6, n=11, d=4, c=3):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(b, n, d)).astype(np.float32)
    mask = rng.random((b, n)) < 0.7
    mask[:, 2] = True
    mask[0] = True
    alpha = np.asarray(masked_softmax(jnp.asarray(rng.normal(size=(b, n)) * 2, jnp.float32), mask))
    kernel = rng.normal(size=(d, c)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32)
    return values, alpha, mask, kernel, bias


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_permutation_moves_the_valid_weights_only_and_ignores_batching():
    _, alpha, mask, _, _ = _problem()
    ids = np.arange(10, 16)
    perm = np.asarray(permuted_weights(jnp.asarray(alpha), jnp.asarray(mask), jnp.asarray(ids), 0))
    assert np.all(perm[~mask] == 0)
    for i in range(len(ids)):
        np.testing.assert_array_equal(np.sort(perm[i, mask[i]]), np.sort(alpha[i, mask[i]]))
    assert not np.array_equal(perm, alpha)
    alone = permuted_weights(
        jnp.asarray(alpha[3:4]), jnp.asarray(mask[3:4]), jnp.asarray(ids[3:4]), 0
    )
    np.testing.assert_array_equal(np.asarray(alone)[0], perm[3])
    padded = permuted_weights(
        jnp.pad(alpha, ((0, 0), (0, 5))), jnp.pad(mask, ((0, 0), (0, 5))), jnp.asarray(ids), 0
    )
    np.testing.assert_array_equal(np.asarray(padded)[:, :11], perm)


def test_outputs_match_a_numpy_reference_for_both_head_paths():
    values, alpha, mask, kernel, bias = _problem(1)
    b = values.shape[0]
    other = np.asarray(
        masked_softmax(jnp.asarray(np.random.default_rng(5).normal(size=alpha.shape)), mask)
    )

    def head(v, w):
        return jnp.einsum("bn,bnd->bd", w, v) @ kernel + bias

    base = np.einsum("bn,bnd->bd", alpha, values) @ kernel + bias
    predicted = base.argmax(-1)
    results = [
        weight_baselines(
            values, alpha, mask, predicted, np.arange(b), head=head, other_weights=other
        ),
        weight_baselines(
            values,
            alpha,
            mask,
            predicted,
            np.arange(b),
            affine=AffineParams(jnp.asarray(kernel), jnp.asarray(bias)),
            other_weights=other,
        ),
    ]
    perm = np.asarray(permuted_weights(jnp.asarray(alpha), jnp.asarray(mask), jnp.arange(b), 0))
    uniform = mask / mask.sum(-1, keepdims=True)
    for res in results:
        assert res.names == ("uniform", "permuted", "other_seed")
        for j, w in enumerate((uniform, perm, other)):
            new = np.einsum("bn,bnd->bd", w, values) @ kernel + bias
            p, q = _softmax(base.astype(np.float64)), _softmax(new.astype(np.float64))
            np.testing.assert_array_equal(np.asarray(res.predicted)[:, j], new.argmax(-1))
            np.testing.assert_array_equal(
                np.asarray(res.changed)[:, j], new.argmax(-1) != predicted
            )
            np.testing.assert_allclose(
                np.asarray(res.tvd)[:, j], 0.5 * np.abs(p - q).sum(-1), atol=1e-6
            )
            m = (p + q) / 2
            js = 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)
            np.testing.assert_allclose(np.asarray(res.js)[:, j], js, atol=1e-6, rtol=1e-4)


def test_own_weights_as_the_other_seed_change_nothing():
    values, alpha, mask, kernel, bias = _problem(2)
    affine = AffineParams(jnp.asarray(kernel), jnp.asarray(bias))
    predicted = (np.einsum("bn,bnd->bd", alpha, values) @ kernel + bias).argmax(-1)
    res = weight_baselines(
        values, alpha, mask, predicted, np.arange(6), affine=affine, other_weights=alpha
    )
    assert not np.asarray(res.changed)[:, 2].any()
    # Same weights, same logits up to the summation order of the batched product.
    np.testing.assert_allclose(np.asarray(res.tvd)[:, 2], 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(res.weight_js)[:, 2], 0.0, atol=1e-6)
