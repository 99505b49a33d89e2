"""Error bounds of float32 computations that tests compare against, derived from the computation."""
from __future__ import annotations

import numpy as np


def round_trip_error(a, stored):
    """Per row of `stored` [n, d] (float32 values), a bound on each component of its error once
    through a Whiten transform `a` in float32 (FAISS: ``y = A x``) and back (``added_vectors``:
    ``y`` times float32 ``A⁻ᵀ``), componentwise: |ŷ − Ax| ≤ γ|A||x|, then the inverse's
    rounding to float32 (≤ 2⁻²⁴ of each entry, doubled for the float64 inverse's own error on
    another machine's LAPACK) and the product's (γ = d·2⁻²⁴ / (1 − d·2⁻²⁴), any summation order)."""
    d = a.shape[1]
    u = 2.0 ** -24
    gamma = d * u / (1 - d * u)
    inverse = np.abs(np.linalg.inv(a))
    x = np.abs(stored.astype(np.float64))
    e_y = gamma * x @ np.abs(a).T
    y = np.abs(stored.astype(np.float64) @ a.T) + e_y
    return e_y @ inverse.T + 2 * u * y @ inverse.T + gamma * (1 + 2 * u) * y @ inverse.T
