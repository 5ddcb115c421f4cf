"""Rollouts: a population (or the plain policy) plays its episodes; the RolloutEvaluator turns them into fitness.

The RolloutEvaluator is the control side of the one fitness seam that classification uses: the ES
estimator (`spikeroll.es.estimators.ESEstimator`) calls `population_fitness(generation, sigma,
frames, labels)` with frames=None and labels = the generation's episode seeds (E,), and gets back
(fitness (N,), mean return (N,)). Shaping, the gradient and the optimiser step are the shared ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from spikeroll.control.envs import EnvBatch
from spikeroll.control.policy import ObsStats, SpikingPolicy
from spikeroll.es.evaluators import BaseEvaluator
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets.model import LayerNoise


@dataclass
class Rollout:
    """What a batch of episodes gave: returns and lengths (members, episodes), and each env's sums of
    the observations the policy acted on (for the running normalisation statistics).

    The sums are kept per env (env j = member·E + e), each added up over its own steps, and reduced
    over the envs only at the end (`obs_sum`): so the totals are a function of every env's own
    episode, whichever other envs shared its batch, and a population played in units (on Ray
    workers, spikeroll.control.remote) puts together, with `cat`, the very same bits."""

    returns: np.ndarray  # (N, E) float64
    lengths: np.ndarray  # (N, E) int64
    env_obs_sum: np.ndarray  # (N·E, obs_dim) float64
    env_obs_sumsq: np.ndarray

    @staticmethod
    def cat(parts: list[Rollout]) -> Rollout:
        """The rollouts of consecutive member ranges as one (members concatenated in order)."""
        return Rollout(*(np.concatenate([getattr(p, k) for p in parts])
                         for k in ("returns", "lengths", "env_obs_sum", "env_obs_sumsq")))

    @property
    def env_steps(self) -> int:
        """Environment steps taken (until each episode's first end)."""
        return int(self.lengths.sum())

    @property
    def obs_count(self) -> int:
        """Observations the policy acted on: one per env step."""
        return self.env_steps

    @property
    def obs_sum(self) -> np.ndarray:
        """Σ of the observations (obs_dim,), float64."""
        return self.env_obs_sum.sum(0)

    @property
    def obs_sumsq(self) -> np.ndarray:
        """Σ of the squared observations (obs_dim,), float64."""
        return self.env_obs_sumsq.sum(0)


@torch.no_grad()
def rollout(policy: SpikingPolicy, batch: EnvBatch, stats: ObsStats, seeds: list[int], members: int,
            noise: list[LayerNoise] | None = None) -> Rollout:
    """Play one episode in each of the batch's envs: env j = member·E + e starts from seeds[e].

    Observations are normalised with `stats` as they stand (frozen by the caller for a generation);
    an env's return sums its rewards until its first termination or truncation.
    """
    episodes = len(seeds)
    count = members * episodes
    obs = batch.reset([seeds[j % episodes] for j in range(count)])
    factors = policy.prepare(noise)  # formed once per rollout (the float policy's member factors)
    alive = np.ones(count, dtype=bool)
    returns = np.zeros(count)
    lengths = np.zeros(count, dtype=np.int64)
    total, total_sq = np.zeros((count, batch.n_obs)), np.zeros((count, batch.n_obs))
    while alive.any():
        live = obs[alive].astype(np.float64)
        total[alive] += live
        total_sq[alive] += live * live
        x = stats.normalise(obs).view(members, episodes, -1)
        actions = policy.actions(policy.outputs(x, factors=factors).reshape(count, -1))
        obs, rewards, done = batch.step(actions, alive)
        returns[alive] += rewards[alive]
        lengths[alive] += 1
        alive &= ~done
    return Rollout(returns.reshape(members, episodes), lengths.reshape(members, episodes), total, total_sq)


class RolloutEvaluator(BaseEvaluator):
    """Fitness of every member of a population from its episodes (the Evaluator protocol).

    Every member plays the generation's seeds (`labels`, (E,)) with the statistics in `stats` frozen;
    fitness is the mean return per member, or `fitness_fn(returns (N, E), lengths (N, E)) -> (N,)`.
    The last rollout stays in `last` (its env steps and observation sums, which the trainer adds to
    the statistics after the update).
    """

    def __init__(self, policy: SpikingPolicy, strategy: EvolutionStrategy, stats: ObsStats, env_id: str,
                 max_episode_steps: int | None = None,
                 fitness_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
        self.policy, self.strategy, self.stats = policy, strategy, stats
        self.env_id, self.max_episode_steps, self.fitness_fn = env_id, max_episode_steps, fitness_fn
        self.batch: EnvBatch | None = None
        self.last: Rollout | None = None

    def unit_pairs(self, batch: int) -> int:
        """The whole population is one unit: its noise is drawn once per generation and reused by the update."""
        return self.strategy.pairs

    @torch.no_grad()
    def population_fitness(self, generation: int, sigma: float, frames, labels: torch.Tensor):
        """(fitness, mean return) of every member (N,), float32 on the CPU; `frames` is unused (None)."""
        seeds = [int(s) for s in labels]
        members = self.strategy.population
        if self.batch is None or self.batch.count != members * len(seeds):
            if self.batch is not None:
                self.batch.close()
            self.batch = EnvBatch(self.env_id, members * len(seeds), self.max_episode_steps)
        noise = self.policy.ask(self.strategy, generation, range(self.strategy.pairs), sigma)
        self.stats.freeze()
        try:
            return self.accept(rollout(self.policy, self.batch, self.stats, seeds, members, noise))
        finally:
            self.stats.unfreeze()

    def accept(self, result: Rollout):
        """(fitness, mean return) (N,) float32 of a generation's rollout, which stays in `last`; the
        one place that turns returns into fitness, here or for rollouts played on Ray workers."""
        self.last = result
        mean_return = result.returns.mean(1)
        fitness = mean_return if self.fitness_fn is None else np.asarray(
            self.fitness_fn(result.returns, result.lengths), dtype=np.float64)
        return torch.from_numpy(np.asarray(fitness, dtype=np.float32)), torch.from_numpy(mean_return.astype(np.float32))

    def close(self) -> None:
        """Close the environments."""
        if self.batch is not None:
            self.batch.close()
            self.batch = None


def evaluate_policy(policy: SpikingPolicy, stats: ObsStats, env_id: str, seeds: list[int],
                    batch: EnvBatch | None = None) -> Rollout:
    """The plain policy's episodes on `seeds` (one env per seed, the env's registered step limit)."""
    own = batch is None
    batch = EnvBatch(env_id, len(seeds)) if own else batch
    stats.freeze()
    try:
        return rollout(policy, batch, stats, seeds, members=1)
    finally:
        stats.unfreeze()
        if own:
            batch.close()
