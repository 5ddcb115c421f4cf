"""Integer-native ES updates in the style of EGG (`--strategy egg`, integer networks only).

EGG (the int8 training of the EGGROLL paper, ESHyperscale/nano-egg run.py `_simple_lora_update`)
keeps no float parameters and no optimiser state:
- each antithetic pair's result is reduced to a sign, s_k = sign(w_2k − w_2k+1) of the shaped
  fitness (the shaping of `spikeroll.es.strategies`, shared with every other estimator);
- per weight matrix, Z = Σ_k s_k·A8_k·B8_kᵀ in integers, with the int8 noise A8 = round(16·A),
  B8 = round(16·B) the population was evaluated with (`spikeroll.nets.integer`: same counters, same
  rounding);
- a weight moves by exactly ±1 (sign of Z) where |Z| passes a z-test: under random signs Z has
  standard deviation √(n·r)·E[A8²]^½·E[B8²]^½ ≈ √(n·r)·256 (n pairs with a nonzero sign), so the
  threshold is ceil(z·√(n·r)·256) (nano-egg uses the same CLT constant);
- z is annealed as nano-egg anneals it: the share of weights a random vote would move,
  α = 2·(1 − Φ(z)), falls as 1/((1/α_end − 1)·g/G + 1) from 1 (z = 0: every weight follows the
  sign of its vote) at the first generation to α_end at the last, where z = `egg_z`;
- weights are clipped to the B-bit range. Biases take the same test on their full-rank int8 noise
  (standard deviation √n·16) and move by one weight step 2^k.
The per-layer steps 2^k are fixed when the network is built (`IntegerNet(frozen_step=lr)`): the
power of two nearest the learning rate, so that a ±1 move is as large as the float estimator's Adam
step (docs/integer.md says why). The latent parameters hold exactly q·2^k (·pool² for the first
layer), which is how checkpoints store the integers and why resume is bit-exact. The estimator writes the
parameters itself and leaves every p.grad None, so the Trainer's optimiser step does nothing.
"""

from __future__ import annotations

import math
import statistics

import torch

from spikeroll.config import TrainConfig
from spikeroll.es.estimators import ESEstimator, evaluator_metrics, fitness_summary
from spikeroll.es.protocols import Evaluator
from spikeroll.es.schedules import sigma_at
from spikeroll.es.strategies import shape_fitness
from spikeroll.nets import loihi, quant
from spikeroll.nets.integer import NOISE_FIXED, THRESHOLD_V, IntegerNet, int8_noise

BIAS_LIMIT = ((1 << (quant.BIAS_MANT_BITS - 1)) - 1) * 2**quant.BIAS_EXP_MAX / THRESHOLD_V  # ≈ 0.5 θ


class EGGEstimator(ESEstimator):
    """Integer ±1 weight moves from the signs of antithetic pairs (see the module docstring); the
    evaluator and its close() are an ES estimator's."""

    def __init__(self, strategy, evaluator: Evaluator, cfg: TrainConfig, net: IntegerNet):
        super().__init__(strategy, evaluator, cfg)
        self.net = net
        self.qmin, self.qmax = quant.q_range(net.bits)

    def z_at(self, generation: int) -> float:
        """The z-threshold of a generation (see the module docstring)."""
        normal = statistics.NormalDist()
        alpha_end = 2 * (1 - normal.cdf(self.cfg.egg_z))
        progress = min(generation / max(self.cfg.generations - 1, 1), 1.0)
        alpha = 1 / ((1 / alpha_end - 1) * progress + 1)
        return normal.inv_cdf(1 - alpha / 2) if alpha < 1 else 0.0

    def _threshold(self, z: float, nonzero: int, rank: int, unit: float) -> int:
        return math.ceil(z * math.sqrt(max(nonzero, 1) * rank) * unit)

    @torch.no_grad()
    def estimate(self, generation: int, frames: torch.Tensor, labels: torch.Tensor) -> dict:
        """Moves the integer weights by ±1 where the pairs' vote passes the z-test (p.grad stays None)."""
        sigma = sigma_at(self.cfg, generation)
        fitness, acc = self.evaluator.population_fitness(generation, sigma, frames, labels)
        shaped = shape_fitness(fitness, self.cfg.shaping)
        signs = torch.sign(shaped[0::2] - shaped[1::2]).to(torch.int32)  # (P,)
        nonzero = int(signs.abs().sum())
        layers = self.net.layers()
        params = list(self.net.params.values())
        z = [torch.zeros(p.shape, dtype=torch.int64) for p in params]
        chunk = self.evaluator.unit_pairs(len(labels))
        for start in range(0, self.strategy.pairs, chunk):
            pairs = range(start, min(start + chunk, self.strategy.pairs))
            s = signs[pairs.start:pairs.stop]
            for i, noise in enumerate(self.strategy.raw_noise(generation, pairs)):
                if len(noise) == 2:  # Z += Σ_k s_k·A8_k·B8_kᵀ: one integer (m × P·r)(P·r × n) product
                    a8 = int8_noise(noise[0]) * s[:, None, None]
                    b8 = int8_noise(noise[1])
                    P, m, r = a8.shape
                    z[i] += torch.from_numpy(loihi.sparse_matmul(
                        a8.permute(1, 0, 2).reshape(m, P * r).contiguous().numpy(),
                        b8.permute(0, 2, 1).reshape(P * r, -1).contiguous().numpy()))
                else:
                    z[i] += (int8_noise(noise[0]) * s.view(-1, *[1] * (noise[0].dim() - 1))).sum(0)
        moved = 0
        rank, zg = self.strategy.rank, self.z_at(generation)
        for i, layer in enumerate(layers):
            scale = 2.0 ** layer["k"] * (self.net.pool**2 if i == 0 else 1)  # latent units of one step
            weight, bias = params[2 * i], params[2 * i + 1]
            step = self._step(z[2 * i], self._threshold(zg, nonzero, rank, 2.0 ** (2 * NOISE_FIXED)))
            q = torch.clamp(layer["q"].to(torch.int64) + step, self.qmin, self.qmax)
            weight.copy_((q.double() * scale).to(weight.dtype))
            bstep = self._step(z[2 * i + 1], self._threshold(zg, nonzero, 1, 2.0**NOISE_FIXED))
            bias.copy_(torch.clamp(bias.double() + bstep.double() * 2.0 ** layer["k"], -BIAS_LIMIT, BIAS_LIMIT)
                       .to(bias.dtype))
            moved += int(step.abs().sum()) + int(bstep.abs().sum())
            weight.grad = bias.grad = None
        return {**fitness_summary(fitness, acc, sigma), "moved": moved, "egg_z": zg,
                **evaluator_metrics(self.evaluator)}

    @staticmethod
    def _step(z: torch.Tensor, threshold: int) -> torch.Tensor:
        """±1 where |Z| >= threshold (integers), else 0."""
        return torch.where(z.abs() >= threshold, torch.sign(z), torch.zeros_like(z))


