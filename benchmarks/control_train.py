"""Train spiking control policies with the shipped per-env defaults, over several seeds, and print one
results row per seed plus the mean: the numbers in docs/control.md.

Each run trains with `spikeroll.control.train_control` (stopping at the config's target_return on
the validation seeds, or at its generations, or at --max-seconds of training), then the report's
mean_return is the final mean policy over eval_episodes (100) fixed test seeds. The row gives the
test return, the generations, the training wall seconds (evaluations on the validation seeds
included, the final test evaluation not), and the environment steps.

Usage:
  python benchmarks/control_train.py ENV [--seeds 0,1,2] [--out DIR] [--max-seconds S] [--set key=value ...]
e.g.
  OMP_NUM_THREADS=1 python benchmarks/control_train.py CartPole-v1 --seeds 0,1,2
  OMP_NUM_THREADS=1 python benchmarks/control_train.py LunarLander-v3 --seeds 0 --max-seconds 900
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from spikeroll.control.config import ControlConfig
from spikeroll.control.trainer import train_control


def parse_value(text: str):
    """A --set value as JSON where it parses (numbers, lists, true/false/null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    """Run the seeds, print a markdown table and write results.json next to the run directories."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default="runs/control")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override a ControlConfig setting")
    args = parser.parse_args()
    overrides = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.set)}
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = ControlConfig.for_env(args.env, **{**overrides, "seed": seed})
        out = Path(args.out) / f"{args.env}-seed{seed}"
        start = time.perf_counter()
        report = train_control(cfg, out, overwrite=True, progress=False, max_seconds=args.max_seconds)
        rows.append({"seed": seed, **report, "total_seconds": round(time.perf_counter() - start, 1)})
        print(f"| {args.env} | {seed} | {report['mean_return']:.1f} ± {report['std_return']:.1f} | "
              f"{report['generations']} | {report['wall_seconds']:.0f} | {report['env_steps']} |", flush=True)
    returns = [r["mean_return"] for r in rows]
    print(f"mean over {len(rows)} seed(s): {statistics.mean(returns):.1f}; "
          f"training seconds {statistics.mean(r['wall_seconds'] for r in rows):.0f} "
          f"(torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.env}-results.json").write_text(json.dumps(
        {"env": args.env, "overrides": overrides, "max_seconds": args.max_seconds, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
