"""CartPole-v1 with a peer library: EvoTorch's GymNE + PGPE (ClipUp) on a small tanh MLP, next to
spikeroll's spiking policy trained by EGGROLL (benchmarks/control_train.py) under the same protocol.

Protocol (the one spikeroll's ControlTrainer follows): every 5 generations the search distribution's
center is evaluated greedily on 10 validation seeds; training stops once that mean reaches 490 (or
after --generations); the final center is then scored on the same 100 test seeds as spikeroll's
report (spikeroll.control.envs.evaluation_seeds). Reported: test mean ± std, generations, training
wall seconds (validation included), and environment steps (EvoTorch's interaction count).

Needs `pip install evotorch` (the `bench` extra). Usage:
  OMP_NUM_THREADS=1 python benchmarks/control_peers.py [--seeds 0,1,2] [--popsize 64] [--generations 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from spikeroll.control.envs import evaluation_seeds, validation_seeds

ENV = "CartPole-v1"
NETWORK = "Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)"


def greedy_returns(policy: torch.nn.Module, seeds: list[int]) -> np.ndarray:
    """Returns of the policy (argmax action) on one CartPole episode per seed."""
    import gymnasium as gym  # optional dependency: the control extra

    env = gym.make(ENV)
    returns = []
    with torch.no_grad():
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                action = int(policy(torch.as_tensor(obs, dtype=torch.float32)).argmax())
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    env.close()
    return np.array(returns)


def run(seed: int, popsize: int, generations: int) -> dict:
    """One EvoTorch PGPE run under the protocol above."""
    from evotorch.algorithms import PGPE  # optional dependency: pip install evotorch
    from evotorch.neuroevolution import GymNE

    torch.manual_seed(seed)
    problem = GymNE(env=ENV, network=NETWORK, observation_normalization=True, num_episodes=2, num_actors=0)
    searcher = PGPE(problem, popsize=popsize, center_learning_rate=0.075, stdev_learning_rate=0.1,
                    radius_init=0.27, optimizer="clipup", optimizer_config={"max_speed": 0.15})
    elapsed, generation, val = 0.0, 0, None
    while generation < generations:
        start = time.perf_counter()
        searcher.step()
        generation += 1
        if generation % 5 == 0:
            val = float(greedy_returns(problem.to_policy(searcher.status["center"]), validation_seeds(10)).mean())
        elapsed += time.perf_counter() - start
        if val is not None and val >= 490:
            break
    test = greedy_returns(problem.to_policy(searcher.status["center"]), evaluation_seeds(100))
    return {"seed": seed, "mean_return": float(test.mean()), "std_return": float(test.std()),
            "generations": generation, "wall_seconds": round(elapsed, 1),
            "env_steps": int(problem.status["total_interaction_count"])}


def main() -> None:
    """Run the seeds and print one markdown row each, plus the mean."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--popsize", type=int, default=64)
    parser.add_argument("--generations", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        row = run(seed, args.popsize, args.generations)
        rows.append(row)
        print(f"| EvoTorch PGPE, MLP {NETWORK!r} | {seed} | {row['mean_return']:.1f} ± {row['std_return']:.1f} | "
              f"{row['generations']} | {row['wall_seconds']:.0f} | {row['env_steps']} |", flush=True)
    print(f"mean over {len(rows)} seed(s): {statistics.mean(r['mean_return'] for r in rows):.1f}; training seconds "
          f"{statistics.mean(r['wall_seconds'] for r in rows):.0f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
