"""A peer library on spikeroll's control tasks: EvoTorch's GymNE with PGPE or SNES, on (a) spikeroll's
own spiking policy (`spikeroll.control.torch_policy.TorchSpikingPolicy`, the same LIF network as
`spikeroll train --env`, started from the same initial parameters) or (b) a small tanh MLP, next to
spikeroll's EGGROLL runs (benchmarks/control_train.py) under the same protocol.

Protocol (the one spikeroll's ControlTrainer follows, read from `ControlConfig.for_env(env)`): every
eval_every generations the search distribution's center plays the val_episodes validation seeds
greedily; training stops once that mean reaches target_return (or after --generations, or once
--max-seconds of training have passed); the final center then plays the same 100 test seeds as
spikeroll's report (spikeroll.control.envs.evaluation_seeds). Each evaluation point records the
training wall seconds so far (validation included), the environment steps so far (EvoTorch's
interaction count: training episodes only, as spikeroll counts them) and the validation return.

The population matches spikeroll's defaults for the env (e.g. CartPole-v1: 64 members, 2 episodes
each). Observations: GymNE's running normalisation (variance floor 1e-2, as spikeroll's), then the
spiking policy clips at ±5 as spikeroll does; EvoTorch updates its statistics during the rollouts,
spikeroll between generations. The training env is seeded once with the run's seed, so a run
repeats (one process, no Ray actors).

Needs `pip install evotorch` (the `bench` extra). Usage:
  OMP_NUM_THREADS=1 python benchmarks/control_peers.py CartPole-v1 --policy spiking --algo pgpe --seeds 0,1,2
  OMP_NUM_THREADS=1 python benchmarks/control_peers.py CartPole-v1 --policy mlp --algo snes --seeds 0,1,2
Writes OUT/<env>-<algo>-<policy>.json (rows and curves; benchmarks/control_peers_plot.py draws them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from spikeroll.control.config import ControlConfig
from spikeroll.control.envs import evaluation_seeds, make_env, space_sizes, validation_seeds
from spikeroll.control.torch_policy import TorchSpikingPolicy
from spikeroll.nets.model import SpikingNet

MLP = "Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)"


def greedy_returns(policy: torch.nn.Module, env_id: str, seeds: list[int]) -> np.ndarray:
    """Returns of the policy (argmax action; Discrete action spaces) on one episode per seed, the
    episodes stepped side by side so that the policy runs on a batch of observations."""
    import gymnasium as gym  # optional dependency: the control extra

    envs = [gym.make(env_id) for _ in seeds]
    obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)])
    returns, running = np.zeros(len(seeds)), np.ones(len(seeds), dtype=bool)
    with torch.no_grad():
        while running.any():
            live = np.flatnonzero(running)
            actions = policy(torch.as_tensor(obs[live], dtype=torch.float32)).argmax(-1).numpy()
            for i, action in zip(live, actions):
                obs[i], reward, terminated, truncated, _ = envs[i].step(int(action))
                returns[i] += float(reward)
                running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


def spiking_network(cfg: ControlConfig, obs_length: int, act_length: int) -> tuple[TorchSpikingPolicy, torch.Tensor]:
    """spikeroll's policy for cfg as an nn.Module, with identity statistics (GymNE normalises; the
    module clips at ±obs_clip), and spikeroll's initial parameters for cfg.seed as a flat vector."""
    sizes = [obs_length, *cfg.hidden, act_length]
    module = TorchSpikingPolicy(sizes, cfg.time_bins, cfg.beta, cfg.threshold, cfg.reset, obs_norm=True,
                                obs_clip=cfg.obs_clip)
    net = SpikingNet(sizes, beta=cfg.beta, threshold=cfg.threshold, reset=cfg.reset, readout="membrane",
                     init_gain=cfg.init_gain, seed=cfg.seed)
    init = torch.cat([p.flatten() for p in net.params.values()])
    assert init.numel() == parameters_to_vector(module.parameters()).numel()
    return module, init


def make_searcher(algo: str, problem, popsize: int, center_init: torch.Tensor | None, stdev: float | None):
    """PGPE with ClipUp at EvoTorch's documented gym settings, or SNES with its default learning rates."""
    from evotorch.algorithms import PGPE, SNES  # optional dependency: pip install evotorch

    spread = {"stdev_init": stdev} if stdev is not None else {"radius_init": 0.27}
    if algo == "pgpe":
        return PGPE(problem, popsize=popsize, center_learning_rate=0.075, stdev_learning_rate=0.1,
                    optimizer="clipup", optimizer_config={"max_speed": 0.15}, center_init=center_init, **spread)
    if algo == "snes":
        return SNES(problem, popsize=popsize, center_init=center_init, **spread)
    raise SystemExit(f"unknown --algo {algo!r}; choose pgpe or snes")


def run(env_id: str, policy: str, algo: str, seed: int, generations: int, max_seconds: float | None,
        stdev: float | None) -> dict:
    """One EvoTorch run under the protocol above; returns its row and its curve."""
    from evotorch.neuroevolution import GymNE  # optional dependency: pip install evotorch

    cfg = ControlConfig.for_env(env_id, seed=seed)
    torch.manual_seed(seed)
    probe = make_env(env_id)
    obs_length, act_length = space_sizes(probe.observation_space, probe.action_space)
    probe.close()
    if policy == "spiking":
        network, center_init = spiking_network(cfg, obs_length, act_length)
    else:
        network, center_init = MLP, None
    problem = GymNE(env=env_id, network=network, observation_normalization=True, num_episodes=cfg.episodes,
                    num_actors=0)
    searcher = make_searcher(algo, problem, cfg.population, center_init, stdev)
    problem._get_env().reset(seed=seed)  # later resets continue from the env's seeded generator
    val_seeds = validation_seeds(cfg.val_episodes)
    load_start = os.getloadavg()
    elapsed, generation, val, curve = 0.0, 0, None, []
    while generation < generations and (max_seconds is None or elapsed < max_seconds):
        start = time.perf_counter()
        searcher.step()
        generation += 1
        evaluated = generation % cfg.eval_every == 0
        if evaluated:
            val = float(greedy_returns(problem.to_policy(searcher.status["center"]), env_id, val_seeds).mean())
        elapsed += time.perf_counter() - start
        if evaluated:
            curve.append({"generation": generation, "seconds": round(elapsed, 2),
                          "env_steps": int(problem.status["total_interaction_count"]), "val_return": val})
            if cfg.target_return is not None and val >= cfg.target_return:
                break
    test = greedy_returns(problem.to_policy(searcher.status["center"]), env_id, evaluation_seeds(cfg.eval_episodes))
    return {"seed": seed, "mean_return": float(test.mean()), "std_return": float(test.std()),
            "generations": generation, "stopped_at_target": bool(curve) and curve[-1]["val_return"] >= (
                cfg.target_return if cfg.target_return is not None else float("inf")),
            "wall_seconds": round(elapsed, 1), "env_steps": int(problem.status["total_interaction_count"]),
            "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in os.getloadavg()],
            "curve": curve}


def main() -> None:
    """Run the seeds, print one markdown row each plus the mean, and write the JSON of rows and curves."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", nargs="?", default="CartPole-v1")
    parser.add_argument("--policy", choices=("spiking", "mlp"), default="spiking")
    parser.add_argument("--algo", choices=("pgpe", "snes"), default="pgpe")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--generations", type=int, default=None, help="default: the env config's generations")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--stdev", type=float, default=None,
                        help="initial search stdev per parameter (default: PGPE radius 0.27, as EvoTorch's examples)")
    parser.add_argument("--out", default="runs/peers")
    args = parser.parse_args()
    generations = args.generations or ControlConfig.for_env(args.env).generations
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        row = run(args.env, args.policy, args.algo, seed, generations, args.max_seconds, args.stdev)
        rows.append(row)
        print(f"| EvoTorch {args.algo.upper()}, {args.policy} | {args.env} | {seed} | "
              f"{row['mean_return']:.1f} ± {row['std_return']:.1f} | {row['generations']} | "
              f"{row['wall_seconds']:.0f} | {row['env_steps']} | load {row['load_start'][0]}–{row['load_end'][0]} |",
              flush=True)
    print(f"mean over {len(rows)} seed(s): {statistics.mean(r['mean_return'] for r in rows):.1f}; training seconds "
          f"{statistics.mean(r['wall_seconds'] for r in rows):.0f} (torch threads {torch.get_num_threads()})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.env}-{args.algo}-{args.policy}.json"
    path.write_text(json.dumps({"env": args.env, "policy": args.policy, "algo": args.algo,
                                "network": MLP if args.policy == "mlp" else "TorchSpikingPolicy",
                                "stdev": args.stdev, "generations": generations, "max_seconds": args.max_seconds,
                                "runs": rows}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
