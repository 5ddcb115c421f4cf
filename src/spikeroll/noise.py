"""The only place that makes random perturbations.

Every noise tensor is a pure function of counters: (seed, generation, parameter index, pair index).
Nothing is stored across generations: any slice of the population can be regenerated anywhere (on
another process or machine) and the update recomputed from fitness scalars alone.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One round of SplitMix64: a cheap bijective mixer that decorrelates nearby counters."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _chain(h: int, *counters: int) -> int:
    for counter in counters:
        h = _splitmix64(h ^ (counter & _MASK64))
    return h


def _parameter_prefix(seed: int, generation: int, param_index: int) -> int:
    """The hash of (seed, generation, parameter) that every pair's seed of that parameter extends."""
    return _chain(_splitmix64(seed & _MASK64), generation, param_index)


def counter_seed(seed: int, generation: int, param_index: int, pair_index: int) -> int:
    """A 64-bit generator seed for one (seed, generation, parameter, pair) cell."""
    return _chain(_parameter_prefix(seed, generation, param_index), pair_index)


def pair_normals(
    seed: int, generation: int, param_index: int, pairs: range, numel: int
) -> torch.Tensor:
    """Standard normals of shape (len(pairs), numel), row k drawn from its own counter seed.

    Generated on the CPU so that a slice is bit-identical wherever it is evaluated; callers move
    it to their device (the low-rank factors are small, so the copy is cheap).
    """
    out = torch.empty(len(pairs), numel)
    gen = torch.Generator()
    prefix = _parameter_prefix(seed, generation, param_index)  # hashed once, not once per row
    for row, pair in enumerate(pairs):
        gen.manual_seed(_chain(prefix, pair))
        torch.randn(numel, generator=gen, out=out[row])
    return out
