"""The accuracy table of docs/integer.md from the run directories of its commands.

Reads RUNS/<name>/report.json of every run there, and evaluates the post-training-quantisation run
(RUNS/ptq: float BPTT of the Loihi network's stand-in) at every weight width: the same trained float
weights, quantised to 8, 4 and 2 bits, each evaluated as the integer network on the validation split.

    python benchmarks/integer_accuracy.py runs/integer --data-dir ../shared/data/nmnist-subset
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spikeroll.api import load_data
from spikeroll.nets.integer import IntegerNet
from spikeroll.training.evaluation import accuracy
from spikeroll.training.rundir import load_trained


def ptq_accuracies(run_dir: Path, data_dir: str) -> dict[int, float]:
    cfg, trained = load_trained(run_dir)
    cfg.data_dir = data_dir
    data = load_data(cfg, progress=False)
    out = {}
    for bits in (8, 4, 2):
        net = IntegerNet(trained.sizes, bits, beta=cfg.beta, readout=cfg.readout, pool=cfg.pool)
        net.load_parameters(trained.params.values())
        out[bits] = accuracy(net, data.val)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    print("| run | strategy | weight bits | generations | s/generation | val accuracy |")
    print("|---|---|---|---|---|---|")
    for report_path in sorted(args.runs.glob("*/report.json")):
        report = json.loads(report_path.read_text())
        cfg = json.loads((report_path.parent / "config.json").read_text())
        bits = cfg.get("weight_bits") or "float"
        print(f"| {report_path.parent.name} | {report['strategy']} | {bits} | {report['generations']} | "
              f"{report['seconds_per_generation']:.2f} | {100 * report['val_accuracy']:.1f} % |")
    if (args.runs / "ptq" / "checkpoint.pt").exists():
        for bits, acc in ptq_accuracies(args.runs / "ptq", args.data_dir).items():
            print(f"| ptq, quantised to {bits} bits | bptt + PTQ | {bits} | | | {100 * acc:.1f} % |")


if __name__ == "__main__":
    main()
