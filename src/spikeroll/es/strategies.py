"""Evolution strategies: EGGROLL (low-rank) and OpenAI-ES (full-rank) share this one code path.

`EvolutionStrategy.ask`: noise for a slice of pairs, a pure function of (seed, generation,
parameter, pair). `EvolutionStrategy.gradient` (the "tell" of ask/tell libraries, without their
update): shaped fitness -> the ES gradient as one contraction over the population, which the
estimator hands to a torch.optim optimizer (negated, since optimizers minimise).

Estimator (OpenAI-ES with antithetic pairs): for member i = 2k + j, sign s = (+1, −1)[j],
    θ_i = θ + σ·s·ε_k,     ĝ = 1/(N·σ) · Σ_i w_i·s_i·ε_{k(i)} = 1/(N·σ) · Σ_k (w_2k − w_2k+1)·ε_k
with ε_k = A_k·B_kᵀ/√r for EGGROLL matrices and a full standard-normal tensor otherwise.
"""

from __future__ import annotations

import math

import torch

from spikeroll.config import SHAPINGS, check_population, check_rank
from spikeroll.errors import SpikerollError
from spikeroll.nets.model import LayerNoise, ParameterHolder
from spikeroll.noise import pair_normals


def shape_fitness(fitness: torch.Tensor, method: str = "centered_ranks") -> torch.Tensor:
    """Fitness (N,) -> weights (N,). NaN/±inf members rank last instead of poisoning the update."""
    f = fitness.detach().double().clone()
    bad = ~torch.isfinite(f)
    if bad.all():
        return torch.zeros_like(f, dtype=torch.float32)
    f[bad] = f[~bad].min() - 1.0 if method != "none" else f[~bad].min()
    if method == "centered_ranks":
        ranks = torch.empty_like(f)
        ranks[torch.argsort(f, stable=True)] = torch.arange(len(f), dtype=f.dtype)
        w = ranks / max(len(f) - 1, 1) - 0.5
    elif method == "zscore":
        std = f.std(unbiased=False)
        w = (f - f.mean()) / std if std > 0 else torch.zeros_like(f)
    elif method == "none":
        w = f - f.mean()
    else:
        raise SpikerollError(f"unknown fitness shaping {method!r}; choose one of {', '.join(SHAPINGS)}")
    return w.float()


def rank_root(rank: int) -> float:
    """√r, by which a rank-r perturbation A·Bᵀ is divided (ε = A·Bᵀ/√r has unit-variance entries)."""
    return math.sqrt(rank)


def noise_scale(sigma: float, rank: int | None) -> float:
    """The factor the noise is scaled by: σ/√r for rank-r noise (it multiplies A), σ for full-rank
    noise (rank None)."""
    return sigma / rank_root(rank) if rank is not None else sigma


class EvolutionStrategy:
    """rank=None is full-rank OpenAI-ES; rank=r is EGGROLL with rank-r matrix perturbations.

    `params` is an ordered mapping name -> tensor (a SpikingNet's `.params`; a SpikingNet itself is
    accepted too). Parameters named in `matrix_shapes` get low-rank noise A·Bᵀ of that (m, n) shape
    (a Conv2d weight (out, in, kh, kw) is the matrix (out, in·kh·kw)); by default every 2-D
    parameter is a matrix of its own shape. Every other parameter gets full-rank noise.
    """

    def __init__(self, params, population: int, rank: int | None, seed: int = 0,
                 matrix_shapes: dict[str, tuple[int, int]] | None = None):
        params = params.params if isinstance(params, ParameterHolder) else params
        check_population(population)
        if matrix_shapes is None:
            matrix_shapes = {name: tuple(p.shape) for name, p in params.items() if p.dim() == 2}
        self.params = params
        # per parameter: its (m, n) matrix shape when it gets low-rank noise, else None
        self.matrix_shapes = [tuple(matrix_shapes[name]) if rank is not None and name in matrix_shapes else None
                              for name in params]
        if rank is not None:
            check_rank(rank, [shape for shape in self.matrix_shapes if shape is not None])
        self.population, self.rank, self.seed = population, rank, seed
        # Noise of the generation in progress, kept from ask() to gradient() so it is drawn once
        # per generation; dropped when the next generation starts (never stored across them).
        self._cached_generation: int | None = None
        self._cache: dict[tuple[int, int], list] = {}

    @property
    def pairs(self) -> int:
        """Antithetic pairs: population // 2."""
        return self.population // 2

    def _normals(self, generation: int, index: int, pairs: range, like: torch.Tensor, shape: tuple) -> torch.Tensor:
        flat = pair_normals(self.seed, generation, index, pairs, math.prod(shape))
        return flat.view(len(pairs), *shape).to(like.device, like.dtype)

    def raw_noise(self, generation: int, pairs: range) -> list[tuple[torch.Tensor, ...]]:
        """Unscaled noise per parameter: (A, B) for low-rank matrices, (E,) otherwise."""
        if self._cached_generation != generation:
            self._cached_generation, self._cache = generation, {}
        key = (pairs.start, pairs.stop)
        if key not in self._cache:
            self._cache[key] = self._draw(generation, pairs)
        return self._cache[key]

    def forget(self) -> None:
        """Drop the kept noise: after the update, or after each unit on a worker, which never
        computes the update (its memory then stays independent of the population)."""
        self._cache = {}

    def _draw(self, generation: int, pairs: range) -> list[tuple[torch.Tensor, ...]]:
        out = []
        for index, (p, matrix) in enumerate(zip(self.params.values(), self.matrix_shapes)):
            if matrix is not None:
                m, n = matrix
                ab = self._normals(generation, index, pairs, p, (m + n, self.rank))
                out.append((ab[:, :m], ab[:, m:]))
            else:
                out.append((self._normals(generation, index, pairs, p, tuple(p.shape)),))
        return out

    def ask(self, generation: int, pairs: range, sigma: float) -> list[LayerNoise]:
        """Scaled per-layer noise for the members of `pairs` (2 members per pair)."""
        raw = self.raw_noise(generation, pairs)
        scale = noise_scale(sigma, self.rank)
        layers = []
        for w, b in zip(raw[0::2], raw[1::2]):
            if len(w) == 2:
                layers.append(LayerNoise(weight_a=w[0] * scale, weight_b=w[1], bias=b[0] * sigma))
            else:
                layers.append(LayerNoise(weight_full=w[0] * sigma, bias=b[0] * sigma))
        return layers

    def gradient(
        self, generation: int, weights: torch.Tensor, sigma: float, chunk_pairs: int | None = None
    ) -> list[torch.Tensor]:
        """ES estimate of ∇E[fitness] for every parameter from shaped weights (N,) alone.

        The noise is regenerated from its counters, chunk by chunk, and contracted over the pairs:
        Σ_k d_k·A_k·B_kᵀ is one (m × P·r)(P·r × n) product, never a per-member matrix.
        """
        first = next(iter(self.params.values()))
        d = (weights[0::2] - weights[1::2]).to(first.device, first.dtype)  # (P,)
        chunk = chunk_pairs or self.pairs
        grads = [torch.zeros(matrix, dtype=p.dtype, device=p.device) if matrix else torch.zeros_like(p)
                 for p, matrix in zip(self.params.values(), self.matrix_shapes)]
        for start in range(0, self.pairs, chunk):
            pairs = range(start, min(start + chunk, self.pairs))
            dk = d[pairs.start : pairs.stop]
            for g, noise in zip(grads, self.raw_noise(generation, pairs)):
                if len(noise) == 2:  # Σ_k d_k A_k B_kᵀ / √r
                    a, b = noise
                    g += torch.einsum("por,pir->oi", a * dk[:, None, None], b) / rank_root(self.rank)
                else:
                    g += torch.tensordot(dk, noise[0], dims=1)
        self.forget()  # the generation is done with its noise
        return [(g / (self.population * sigma)).view(p.shape) for g, p in zip(grads, self.params.values())]
