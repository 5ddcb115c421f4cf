"""EGGROLL against surrogate-gradient BPTT on the same network and data, on several validation
splits: the measurement behind the README's "three splits" table.

With 200 validation recordings one recording is half a point, and different splits of the real
subset disagree by several points, so one split cannot settle a 2-point comparison. This runs both
strategies on each split and prints their difference per split and on average.

Each (split, strategy) is one ordinary training run (`spikeroll.api.train_run`), one after another,
so every run has the machine to itself: its seconds are the 2-core figure. A split is
`ids:801-1000` (validate on those recording ids, `--val-ids`) or `seed:N` (a stratified
`--val-fraction` split drawn by seed N; the seed also draws the initialisation, noise and
minibatches). Writes OUT/<split>/<strategy>/ run directories and OUT/accuracy_splits.md.

Usage (the README's command; about 50 minutes on 2 CPU cores):
  python benchmarks/accuracy_splits.py --config configs/nmnist-subset.toml \\
      --data-dir ../shared/data/nmnist-subset --out runs/splits
Options: --splits ids:801-1000,seed:0,seed:1  --bptt-generations 2000  --bptt-lr 0.002
         --generations G (ES; default: the config's)  --dataset NAME (default: the config's)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from spikeroll import TrainConfig
from spikeroll.api import load_data, train_run
from spikeroll.errors import SpikerollError


def parse_split(text: str) -> tuple[str, dict]:
    """'ids:801-1000' or 'seed:1' -> (directory name, TrainConfig fields)."""
    kind, _, value = text.partition(":")
    if kind == "ids" and value:
        return f"ids{value}", {"val_ids": value, "seed": 0}
    if kind == "seed" and value.isdigit():
        return f"seed{value}", {"val_ids": None, "seed": int(value)}
    raise SpikerollError(f"split {text!r} is not ids:FIRST-LAST or seed:N; try --splits ids:801-1000,seed:0,seed:1")


def run_split(base: TrainConfig, name: str, fields: dict, out: Path, bptt: dict) -> dict:
    cfg = dataclasses.replace(base, **fields)
    data = load_data(cfg, progress=False)  # both strategies train and validate on the same data
    row = {"split": name}
    for strategy, cfg_s in (("eggroll", cfg), ("bptt", dataclasses.replace(cfg, strategy="bptt", **bptt))):
        start = time.perf_counter()
        report = train_run(cfg_s, out / name / strategy, overwrite=True, progress=False, data=data)
        row[strategy] = report["val_accuracy"]
        row[f"{strategy}_seconds"] = time.perf_counter() - start
        row[f"{strategy}_steps"] = report["generations"]
    row["gap"] = row["eggroll"] - row["bptt"]
    return row


def table(rows: list[dict]) -> str:
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    lines = ["| split | eggroll val. | bptt val. | eggroll − bptt | eggroll s (steps) | bptt s (steps) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['split']} | {pct(r['eggroll'])} | {pct(r['bptt'])} | {100 * r['gap']:+.1f} | "
                     f"{r['eggroll_seconds']:.0f} ({r['eggroll_steps']}) | "
                     f"{r['bptt_seconds']:.0f} ({r['bptt_steps']}) |")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("eggroll", "bptt", "gap")}
    lines.append(f"| mean | {pct(mean['eggroll'])} | {pct(mean['bptt'])} | {100 * mean['gap']:+.1f} | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="TOML/JSON settings of the ES run (e.g. configs/nmnist-subset.toml)")
    p.add_argument("--data-dir")
    p.add_argument("--dataset")
    p.add_argument("--splits", default="ids:801-1000,seed:0,seed:1")
    p.add_argument("--generations", type=int, help="ES generations (default: the config's)")
    p.add_argument("--bptt-generations", type=int, default=2000)
    p.add_argument("--bptt-lr", type=float, default=0.002)
    p.add_argument("--out", default="runs/splits")
    args = p.parse_args(argv)
    base = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("dataset", args.dataset),
                                   ("generations", args.generations)) if v is not None}
    base = dataclasses.replace(base, **overrides).validate()
    splits = [parse_split(s) for s in args.splits.split(",") if s]
    bptt = {"lr": args.bptt_lr, "generations": args.bptt_generations}
    out = Path(args.out)
    rows = [run_split(base, name, fields, out, bptt) for name, fields in splits]
    text = table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy_splits.md").write_text(text)
    print(text, end="")
    return text


if __name__ == "__main__":
    try:
        main()
    except SpikerollError as exc:
        raise SystemExit(f"error: {exc}") from None
