"""Float against integer (Loihi) spiking policies on a Gymnasium task: the numbers of docs/control.md,
"The integer (Loihi) policy".

Per seed, three rows' worth of numbers, each the mean policy's return over the same 100 fixed test
seeds (`envs.evaluation_seeds`):
- float: the shipped config trained as `benchmarks/control_train.py` trains it (float LIF policy);
- float -> int8 (post-training quantisation): that run's trained policy evaluated as the integer
  policy (`evaluate_control(run, weight_bits=B)`), not retrained;
- int8 ES: the same config with neuron = "loihi", weight_bits = B, reset = "zero", trained by ES on
  the integer forward pass itself;
- with --finetune, int8 ES instead starts from the float run's trained parameters and observation
  statistics (init_from: post-training quantisation, then integer ES), in DIR/ENV-intB-finetune-seedS.

Usage:
  python benchmarks/control_integer.py ENV [--seeds 0,1,2] [--out DIR] [--max-seconds S] [--bits 8]
         [--skip-float] [--skip-integer] [--finetune]
e.g.
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/control_integer.py CartPole-v1 --seeds 0,1,2
--skip-float reuses DIR/ENV-float-seedS when its report.json exists (it is then only evaluated).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spikeroll.control.config import ControlConfig
from spikeroll.control.trainer import evaluate_control, train_control


def train(cfg: ControlConfig, out: Path, max_seconds: float | None) -> dict:
    """Train one run (overwriting) and return its report with the total seconds."""
    start = time.perf_counter()
    report = train_control(cfg, out, overwrite=True, progress=False, max_seconds=max_seconds)
    return {**report, "total_seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    """Run every seed, print one markdown row per seed and write ENV-intB-results.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default="runs/control-integer")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--skip-float", action="store_true", help="reuse finished float runs in --out")
    parser.add_argument("--skip-integer", action="store_true", help="no integer ES training")
    parser.add_argument("--finetune", action="store_true", help="integer ES starts from the float run")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        row: dict = {"seed": seed}
        float_dir = out / f"{args.env}-float-seed{seed}"
        if args.skip_float and (float_dir / "report.json").exists():
            row["float"] = json.loads((float_dir / "report.json").read_text())
        else:
            row["float"] = train(ControlConfig.for_env(args.env, seed=seed), float_dir, args.max_seconds)
        row["ptq"] = evaluate_control(float_dir, row["float"]["eval_episodes"], weight_bits=args.bits)
        if not args.skip_integer:
            cfg = ControlConfig.for_env(args.env, seed=seed, neuron="loihi", weight_bits=args.bits, reset="zero",
                                        init_from=str(float_dir) if args.finetune else None)
            name = f"{args.env}-int{args.bits}{'-finetune' if args.finetune else ''}-seed{seed}"
            row["integer"] = train(cfg, out / name, args.max_seconds)
        rows.append(row)
        f, p, i = row["float"], row["ptq"], row.get("integer")
        text = f"{i['mean_return']:.1f} ± {i['std_return']:.1f} | {i['generations']} | {i['wall_seconds']:.0f}" \
            if i else "– | – | –"
        print(f"| {args.env} | {seed} | {f['mean_return']:.1f} ± {f['std_return']:.1f} | {f['generations']} | "
              f"{f['wall_seconds']:.0f} | {p['mean_return']:.1f} ± {p['std_return']:.1f} | {text} |", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.env}-int{args.bits}{'-finetune' if args.finetune else ''}-results.json").write_text(json.dumps(
            {"env": args.env, "bits": args.bits, "max_seconds": args.max_seconds, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
