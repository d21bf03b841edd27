"""Synthetic data for tests and benchmarks: customer-shaped tables with no clean clusters.

Real customer tables are not a few well-separated blobs: segments overlap, their sizes follow a
long tail, features are correlated within a segment, and money and counts are skewed. Clean blobs
make every K-means converge in two or three iterations and so prove nothing about speed or quality.
:func:`make_customers` draws from a mixture with those properties instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gpuseg.read_ahead import usable_cores

__all__ = ["make_customers"]

# Rows per generated block: bounds the scratch memory (a few blocks of this many rows) and fixes
# the random streams, so the table does not depend on the thread count.
_BLOCK_ROWS = 1 << 17
# Rows drawn once to standardise the columns; fixed so that the scaling does not depend on
# n_samples.
_PILOT_ROWS = 1 << 16
# At most this many threads, each holding a few blocks of scratch.
_MAX_THREADS = 8
# Zipf exponent of the component shares: a few large segments and a long tail of small ones.
_SHARE_EXPONENT = 1.1
# Spread of the component means relative to the within-component scales; near 1 the components
# overlap heavily.
_MEAN_SPREAD = 1.6


def make_customers(
    n_samples: int,
    n_features: int = 16,
    *,
    n_components: int | None = None,
    random_state: int | np.random.Generator | None = None,
    dtype: type | np.dtype = np.float32,
) -> np.ndarray:
    """Draw a customer-shaped feature table from an overlapping, skewed Gaussian mixture.

    The mixture has more components than the number of clusters one would fit, with Zipf-like
    shares (a few large segments, a long tail of small ones), means on a low-dimensional manifold
    so that neighbouring components overlap, and per-component anisotropic covariances (a random
    rotation and per-axis scales). The first ``max(1, n_features // 8)`` columns are log-normal
    (like spend) and the next ``max(1, n_features // 8)`` are floored log-normal counts (like
    visits); all columns are then centred and scaled with constants estimated once from a fixed
    pilot sample, as a feature pipeline would standardise them.

    Rows are generated in fixed-size blocks straight into the output, in parallel threads, each
    block with its own random stream: the extra memory is a few blocks whatever ``n_samples`` is,
    and the result depends only on the arguments, not on the thread count.

    Parameters
    ----------
    n_samples : int
        Number of rows (customers), at least 1.
    n_features : int, default 16
        Number of columns, at least 2.
    n_components : int, optional
        Number of mixture components; defaults to ``3 * n_features``.
    random_state : int, numpy.random.Generator or None, default None
        Seed of the table; the same integer gives the same table. ``None`` draws fresh entropy.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        Floating dtype of the result.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
        C-contiguous table of finite values, roughly zero-mean and unit-variance per column.

    Examples
    --------
    >>> X = make_customers(1000, 8, random_state=0)
    >>> X.shape, X.dtype
    ((1000, 8), dtype('float32'))
    >>> bool(np.array_equal(X, make_customers(1000, 8, random_state=0)))
    True
    """
    n_components = 3 * n_features if n_components is None else n_components
    _check_arguments(n_samples, n_features, n_components, dtype)
    dtype = np.dtype(dtype)
    seeds = _seed_sequence(random_state).spawn(3)
    mixture = _draw_mixture(np.random.default_rng(seeds[0]), n_features, n_components, dtype)
    pilot = _draw_block(np.random.default_rng(seeds[1]), _PILOT_ROWS, mixture, dtype)
    mixture["center"] = pilot.mean(axis=0, dtype=np.float64).astype(dtype)
    mixture["scale"] = (1.0 / pilot.std(axis=0, dtype=np.float64)).astype(dtype)

    X = np.empty((n_samples, n_features), dtype=dtype)
    starts = range(0, n_samples, _BLOCK_ROWS)
    block_seeds = seeds[2].spawn(len(starts))

    def fill(index: int) -> None:
        start = starts[index]
        stop = min(start + _BLOCK_ROWS, n_samples)
        rng = np.random.default_rng(block_seeds[index])
        _draw_block(rng, stop - start, mixture, dtype, out=X[start:stop])

    n_threads = min(len(starts), usable_cores(), _MAX_THREADS)
    if n_threads == 1:
        for index in range(len(starts)):
            fill(index)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(fill, range(len(starts))))
    return X


def _check_arguments(n_samples, n_features, n_components, dtype) -> None:
    """Raise ``ValueError`` naming the first argument out of range."""
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} should be an integer >= 1.")
    if int(n_features) != n_features or n_features < 2:
        raise ValueError(f"n_features={n_features!r} should be an integer >= 2.")
    if int(n_components) != n_components or n_components < 1:
        raise ValueError(f"n_components={n_components!r} should be an integer >= 1.")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype={np.dtype(dtype)} should be float32 or float64.")


def _seed_sequence(random_state) -> np.random.SeedSequence:
    """Turn ``random_state`` into a seed sequence (a generator is asked for one integer)."""
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    return np.random.SeedSequence(random_state)


def _draw_mixture(rng: np.random.Generator, n_features: int, n_components: int, dtype) -> dict:
    """Draw the mixture: shares, means, per-component transforms and the skewed columns."""
    # Zipf shares with log-normal jitter, assigned to components in random order.
    shares = np.arange(1, n_components + 1, dtype=np.float64) ** -_SHARE_EXPONENT
    shares *= rng.lognormal(0.0, 0.3, n_components)
    shares = rng.permutation(shares / shares.sum())

    # Means near a low-dimensional manifold: customers vary along a few latent traits.
    n_latent = max(2, n_features // 4)
    latent = rng.standard_normal((n_components, n_latent))
    loading = rng.standard_normal((n_latent, n_features)) / np.sqrt(n_latent)
    means = _MEAN_SPREAD * latent @ loading
    means += 0.3 * rng.standard_normal((n_components, n_features))

    # x = mean + z @ (diag(scales) @ rotation): anisotropic, differently oriented per component.
    transforms = np.empty((n_components, n_features, n_features))
    for c in range(n_components):
        rotation, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        scales = np.exp(rng.uniform(np.log(0.2), np.log(1.0), n_features))
        transforms[c] = scales[:, None] * rotation

    n_skewed = max(1, n_features // 8)
    return {
        "shares": shares,
        "means": means.astype(dtype),
        "transforms": transforms.astype(dtype),
        "spend": slice(0, n_skewed),
        "counts": slice(n_skewed, 2 * n_skewed),
        "center": np.zeros(n_features, dtype=dtype),
        "scale": np.ones(n_features, dtype=dtype),
    }


def _draw_block(rng, n_rows: int, mixture: dict, dtype, out: np.ndarray | None = None):
    """Draw ``n_rows`` rows of the mixture into ``out`` (allocated when omitted)."""
    means, transforms = mixture["means"], mixture["transforms"]
    out = np.empty((n_rows, means.shape[1]), dtype=dtype) if out is None else out
    counts = rng.multinomial(n_rows, mixture["shares"])
    # Components fill random row positions, so any slice of the table is a fair sample.
    rows = rng.permutation(n_rows)
    z = rng.standard_normal((n_rows, means.shape[1]), dtype=dtype)
    stop = 0
    for c in np.flatnonzero(counts):
        start, stop = stop, stop + counts[c]
        block = z[start:stop] @ transforms[c]
        block += means[c]
        out[rows[start:stop]] = block
    spend, visits = mixture["spend"], mixture["counts"]
    # Half the latent scale keeps the tails long (skewness about 2 to 4) without letting a few
    # rows dominate every centre.
    np.exp(0.5 * out[:, spend], out=out[:, spend])
    out[:, visits] = np.floor(np.exp(0.5 * out[:, visits] + 1.5))
    out -= mixture["center"]
    out *= mixture["scale"]
    return out
