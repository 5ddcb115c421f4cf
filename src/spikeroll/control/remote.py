"""A control population's rollouts on Ray workers (`spikeroll train --env ... --workers K`).

The dispatcher is the classification one (`spikeroll.training.distributed.RayUnits`: work units to
idle workers, a lost worker's unit back in the queue, the same timeout and errors); only what a unit
is differs. A classification unit scores its members on the generation's shared minibatch; a
control unit plays its own members' episodes:

    driver: θ and the observation statistics -> object store (once per generation)
    worker: members 2·start..2·stop play the generation's seeds -> returns, lengths, per-env observation sums
    driver: the units' rollouts, put together in member order (`Rollout.cat`) -> the same fitness
            (RolloutEvaluator.accept, a --fitness function included) and statistics update as one process

Why the bits do not depend on the workers: every product of the policy's forward is per member (the
rows of x·Wᵀ, the batched (x·B)·Aᵀ, the LIF kernel), every env steps on its own, the noise of a pair
is drawn from counters, and the observation sums are kept per env and reduced in env order
(spikeroll.control.rollout.Rollout). So a member's episodes are the same in a unit of 8 pairs on a
worker as in the whole population in one process (tests/test_control_distributed.py compares a run's
parameters and metrics bit for bit). The update regenerates the noise in the local evaluator's
chunks (the whole population), as one process does.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeroll.control.config import ControlConfig
from spikeroll.control.envs import EnvBatch, make_env
from spikeroll.control.factory import make_policy
from spikeroll.control.policy import ObsStats
from spikeroll.control.rollout import Rollout, RolloutEvaluator, rollout
from spikeroll.es.evaluators import units
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.training.distributed import RayUnits, WorkerInfo

# Pairs per work unit (16 members, each playing the generation's episodes): small enough that 2-8
# workers share a 64-member population dynamically, large enough that a unit's rollout (hundreds
# of batched policy steps) outweighs its Ray round trip. Results do not depend on it (see above).
UNIT_PAIRS = 8


class RolloutWorker(WorkerInfo):
    """A Ray actor: the run's policy, strategy and observation statistics; plays units of members."""

    def __init__(self, cfg_dict: dict, threads: int):
        torch.set_num_threads(threads)
        self.cfg = cfg = ControlConfig.from_dict(cfg_dict)
        probe = make_env(cfg.env)
        self.policy = make_policy(cfg, probe.observation_space, probe.action_space)
        probe.close()
        net = self.policy.net
        self.strategy = EvolutionStrategy(net.params, cfg.population, None if cfg.strategy == "openes" else cfg.rank,
                                          cfg.seed)
        self.stats = ObsStats(net.sizes[0], cfg.obs_norm, cfg.obs_clip)
        self.batches: dict[int, EnvBatch] = {}  # env count -> its envs, kept across generations
        self.key = None

    def prepare(self) -> dict:
        """Nothing to load (each worker makes its own envs); report info()."""
        return self.info()

    @torch.no_grad()
    def evaluate(self, generation: int, sigma: float, seeds: list[int], payload: list, start: int, stop: int):
        """The Rollout of pairs start..stop (members 2·start..2·stop) on `seeds`, with θ and the
        observation statistics of `payload` ([ObjectRef], fetched once per generation)."""
        import ray  # optional dependency (extra `distributed`); always there in a Ray worker

        if self.key != payload[0].hex():
            values, stats = ray.get(payload[0])
            self.policy.net.load_parameters([torch.from_numpy(np.array(v)) for v in values])
            self.stats.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in stats.items()})
            self.key = payload[0].hex()
        count = 2 * (stop - start) * len(seeds)
        if count not in self.batches:
            self.batches[count] = EnvBatch(self.cfg.env, count, self.cfg.max_episode_steps)
        noise = self.strategy.ask(generation, range(start, stop), sigma)
        self.stats.freeze()  # the driver's statistics as they stand: the same (mean, std) bits
        try:
            return rollout(self.policy, self.batches[count], self.stats, seeds, 2 * (stop - start), noise)
        finally:
            self.stats.unfreeze()
            self.strategy.forget()


class RolloutRayEvaluator(RayUnits):
    """A RolloutEvaluator's population played on Ray workers, in units of UNIT_PAIRS pairs.

    `local` is the driver's RolloutEvaluator: it holds θ (its policy) and the statistics, fixes the
    update's noise chunks, turns the put-together rollout into fitness and keeps it in `local.last`
    (which the trainer reads)."""

    def __init__(self, local: RolloutEvaluator, cfg: ControlConfig):
        super().__init__(cfg)
        self.local, self.strategy = local, local.strategy

    def unit_pairs(self, batch: int) -> int:
        """The local evaluator's (the update's noise chunks), so the update matches one process."""
        return self.local.unit_pairs(batch)

    def _actor(self, threads: int) -> tuple[type, tuple]:
        return RolloutWorker, (self.cfg.to_dict(), threads)

    @torch.no_grad()
    def population_fitness(self, generation: int, sigma: float, frames, labels: torch.Tensor):
        """(fitness, mean return) of every member (N,), as RolloutEvaluator gives them; `frames` is unused."""
        seeds = [int(s) for s in labels]
        values = [p.detach().cpu().numpy() for p in self.local.policy.net.params.values()]
        stats = {k: v.numpy() for k, v in self.local.stats.state_dict().items()}
        todo = units(self.strategy.pairs, UNIT_PAIRS)
        run = self._run(generation, (sigma, seeds), (values, stats), todo, parts={})
        parts = run.results["parts"]
        return self.local.accept(Rollout.cat([parts[unit.start] for unit in todo]))

    def _accept(self, run, index: int, unit: range, result: Rollout) -> int:
        run.results["parts"][unit.start] = result
        return sum(a.nbytes for a in (result.returns, result.lengths, result.env_obs_sum, result.env_obs_sumsq))

    def close(self) -> None:
        """Stop the workers (and a local Ray instance this evaluator started) and the local envs."""
        super().close()
        self.local.close()
