"""A numba LIF loop for the policy's small per-step tensors (compiled on first use, cached on disk).

A control step runs a population of small layers (e.g. 128 envs x 16 neurons x 8 time bins); in
eager PyTorch each of the LIF loop's ~5·T elementwise operations costs more in dispatch than in
arithmetic. This kernel runs the same recurrence as `spikeroll.nets.model.lif` in one call:
v ← β·v + I_t; s = [v ≥ θ]; v ← v − θ·s (subtract) or v·(1 − s) (zero), in float32. Without numba
the policy falls back to `lif`.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeroll.nets import kernels

if kernels.available():

    @kernels.cached_njit(nogil=True)
    def _lif(current, steps, beta, threshold, subtract, weights, spikes, total):  # pragma: no cover
        """current (N, Tc, R) with Tc = 1 (constant over the steps) or steps; writes the spike trains
        (N, steps, R) into `spikes` when it has rows, and Σ_t weights_t·s_t (N, R) into `total`."""
        n_members, tc, rows = current.shape
        keep = spikes.shape[0] > 0
        beta = np.float32(beta)
        threshold = np.float32(threshold)
        for n in range(n_members):
            v = np.zeros(rows, np.float32)
            acc = np.zeros(rows, np.float32)
            for t in range(steps):
                ct = 0 if tc == 1 else t
                w = weights[t]
                for j in range(rows):
                    vj = current[n, ct, j] + beta * v[j]
                    s = np.float32(1.0) if vj >= threshold else np.float32(0.0)
                    if subtract:
                        vj = vj - threshold * s
                    else:
                        vj = vj * (np.float32(1.0) - s)
                    v[j] = vj
                    acc[j] += w * s
                    if keep:
                        spikes[n, t, j] = s
            for j in range(rows):
                total[n, j] = acc[j]


def lif_steps(current: torch.Tensor, steps: int, beta: float, threshold: float, reset: str,
              weights: torch.Tensor, trains: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """LIF over `steps` time bins of current (N, Tc, R) (Tc = 1: the same current every bin):
    (spike trains (N, steps, R) when `trains`, else None; Σ_t weights_t·s_t (N, R))."""
    n, tc, rows = current.shape
    cur = np.ascontiguousarray(current.numpy(), dtype=np.float32)
    spikes = np.empty((n, steps, rows), np.float32) if trains else np.zeros((0, 0, 0), np.float32)
    total = np.empty((n, rows), np.float32)
    _lif(cur, steps, float(beta), float(threshold), reset == "subtract",
         np.ascontiguousarray(weights.numpy(), dtype=np.float32), spikes, total)
    return (torch.from_numpy(spikes) if trains else None), torch.from_numpy(total)
