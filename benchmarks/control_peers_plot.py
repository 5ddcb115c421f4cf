"""Draw validation return against training wall-clock seconds and against environment steps, for
spikeroll's control runs (metrics.jsonl of benchmarks/control_train.py's run directories) and the
EvoTorch runs of benchmarks/control_peers.py (their JSON), one line per seed; print the curves as a
markdown table too.

Usage:
  python benchmarks/control_peers_plot.py --env CartPole-v1 --spikeroll runs/control \\
      --peers runs/peers runs/peers-long runs/peers-long2 --target 490 --out docs/figures/control-peers-cartpole.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"spikeroll EGGROLL, spiking": "C0", "EvoTorch PGPE, spiking": "C1", "EvoTorch SNES, spiking": "C2",
           "EvoTorch PGPE, mlp": "C3", "EvoTorch SNES, mlp": "C4"}


def spikeroll_curves(root: Path, env: str) -> dict[str, list[dict]]:
    """Per seed: the evaluation points (generation, cumulative training seconds, env steps, val return)."""
    curves = {}
    for run in sorted(root.glob(f"{env}-seed*")):
        points, seconds = [], 0.0
        for line in (run / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            seconds += record["seconds"]
            if "val_return" in record:
                points.append({"generation": record["generation"] + 1, "seconds": seconds,
                               "env_steps": record["env_steps"], "val_return": record["val_return"]})
        curves[run.name.rsplit("seed", 1)[1]] = points
    return curves


def peer_curves(roots: list[Path], env: str) -> dict[str, dict[str, list[dict]]]:
    """Per method (e.g. "EvoTorch PGPE, spiking"), per seed: the evaluation points. A seed found in
    several folders (a run repeated with a longer --max-seconds retraces the shorter one) keeps its
    longest curve."""
    methods: dict[str, dict[str, list[dict]]] = {}
    for root in roots:
        for path in sorted(root.glob(f"{env}-*.json")):
            data = json.loads(path.read_text())
            seeds = methods.setdefault(f"EvoTorch {data['algo'].upper()}, {data['policy']}", {})
            for r in data["runs"]:
                if len(r["curve"]) > len(seeds.get(str(r["seed"]), [])):
                    seeds[str(r["seed"])] = r["curve"]
    return methods


def main() -> None:
    """Plot the two panels and print the curves."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--spikeroll", default="runs/control")
    parser.add_argument("--peers", nargs="+", default=["runs/peers"], help="folders of control_peers.py JSON")
    parser.add_argument("--out", default="docs/figures/control-peers-cartpole.png")
    parser.add_argument("--target", type=float, default=None, help="draw the stopping threshold")
    args = parser.parse_args()
    methods = {"spikeroll EGGROLL, spiking": spikeroll_curves(Path(args.spikeroll), args.env),
               **peer_curves([Path(p) for p in args.peers], args.env)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=80)
    for name, seeds in methods.items():
        for k, (seed, points) in enumerate(sorted(seeds.items())):
            for ax, key in zip(axes, ("seconds", "env_steps")):
                ax.plot([p[key] for p in points], [p["val_return"] for p in points], marker=".",
                        color=COLOURS.get(name), label=name if k == 0 else None, linewidth=1)
            print(f"| {name} | {seed} | " + ", ".join(
                f"{p['seconds']:.0f} s / {p['env_steps'] / 1000:.0f}k: {p['val_return']:.0f}" for p in points) + " |")
    for ax, label in zip(axes, ("training wall-clock seconds (log)", "training environment steps (log)")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation return")
        if args.target is not None:
            ax.axhline(args.target, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7)
    fig.suptitle(f"{args.env}: mean policy on the validation seeds, every evaluation point, one line per seed",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
