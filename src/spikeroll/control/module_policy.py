"""A user's torch.nn.Module as the control policy: `spikeroll train --env ID --model FILE.py:FACTORY`.

Contract: FACTORY(obs_dim, action_dim) returns an nn.Module that maps a batch of normalised
observations (B, obs_dim) float32 to outputs (B, action_dim): for a Discrete action space, scores
whose argmax is the action; for a Box space, values passed through the built-in policy's tanh
scaling to the bounds (`SpikingPolicy.actions`). A spiking module loops over its own time bins (an
snnTorch net with `for t in range(T)` on the constant input current) and must act per sample (no
batch mixing: every member's environments are rows of one batch). Observation normalisation and
clipping stay spikeroll's (`ObsStats`), as for the built-in policy. examples/snntorch_cartpole.py
is one such module.

The population runs through EGGROLL's population forward (`spikeroll.modules.es`) with per-member
inputs: member m's environments are rows m·E..(m+1)·E of one batch of N·E observations, and every
Linear/Conv adds member m's low-rank correction to its rows. The noise, shaping and update are the
EGGROLL strategy's, which the trainer uses as it uses the built-in policy's.

Trust: the file is imported only because the user named it with --model; a saved run's config
records it, and resuming, evaluating or playing that run needs --model named again.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeroll.control.envs import is_discrete, space_sizes
from spikeroll.control.policy import SpikingPolicy
from spikeroll.errors import SpikerollError
from spikeroll.modules.checks import reset_state
from spikeroll.modules.es import EGGROLL
from spikeroll.modules.net import ModuleNet, seeded_module

EXAMPLE = "examples/snntorch_cartpole.py:make_policy"


class ModulePolicy(SpikingPolicy):
    """A user's module with SpikingPolicy's interface (ask, prepare, outputs, actions, .net).

    `net` is the module as a ModuleNet (sizes [obs_dim, action_dim], .params for the optimiser and
    checkpoints); `es` is the EGGROLL whose strategy the trainer's ES estimator uses.
    """

    def __init__(self, net: ModuleNet, es: EGGROLL, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, start: int = 0):
        super().__init__(net, 0, low, high, start)  # time bins are the module's own
        self.es = es

    def ask(self, strategy, generation: int, pairs: range, sigma: float) -> range:
        """The members of `pairs` at (generation, σ): EGGROLL draws their noise from its strategy
        (the trainer's) as each population forward runs, so only the counters are set here."""
        self.es.generation, self.es.sigma = generation, sigma
        return pairs

    def prepare(self, noise: range | None) -> range | None:
        """The pairs `ask` gave (or None: the plain policy); nothing to precompute."""
        return noise

    @torch.no_grad()
    def outputs(self, x: torch.Tensor, noise: range | None = None, factors: range | None = None) -> torch.Tensor:
        """Outputs (N, E, action_dim) of N members for their own observations x (N, E, obs_dim):
        with pairs (from `ask`), member 2k (2k+1) of pair k runs θ + (−) its noise; without, every
        row runs the plain module."""
        pairs = factors if factors is not None else noise
        n, e, _ = x.shape
        rows = x.reshape(n * e, -1)
        if pairs is None:
            reset_state(self.net.module)  # snnTorch neurons with held state start from rest
            out = self.net.module(rows)
        else:
            out = self.es.population_forward(rows, pairs=pairs, per_member=True)
        expected = (n, e, self.net.classes) if pairs is not None else (n * e, self.net.classes)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            raise SpikerollError(f"--model returned {_shown(out, pairs is not None)}; the contract is outputs "
                                 f"(B, {self.net.classes}) for observations (B, {self.net.sizes[0]}), e.g. {EXAMPLE}")
        return out.reshape(n, e, -1)


def _shown(out, population: bool) -> str:
    """The shape the module returned for B observations, as (B, ...), or the type it returned."""
    if not isinstance(out, torch.Tensor):
        return type(out).__name__
    rest = out.shape[2:] if population else out.shape[1:]
    return "(" + ", ".join(["B", *map(str, rest)]) + ")"


def make_module_policy(cfg, observation_space, action_space) -> ModulePolicy:
    """cfg.model's module for an env's spaces (initialised under cfg.seed, as classification's
    `ModuleNet.from_config`) with the EGGROLL of the run's strategy settings."""
    n_obs, n_out = space_sizes(observation_space, action_space)
    net = ModuleNet(seeded_module(cfg, n_obs, n_out, example=EXAMPLE), n_obs, n_out, "cpu")
    rank = None if cfg.strategy == "openes" else cfg.rank
    es = EGGROLL(net.module, population=cfg.population, rank=rank, sigma=cfg.sigma, seed=cfg.seed,
                 shaping=cfg.shaping)
    box = None if is_discrete(action_space) else (action_space.low, action_space.high)
    start = 0 if box else int(action_space.start)
    return ModulePolicy(net, es, *(box or (None, None)), start=start)
