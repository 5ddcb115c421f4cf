"""Bit-for-bit fingerprints of a set of short runs, to check that a refactor changes no result.

    python scripts/fingerprint.py OUT_DIR [--only NAME ...]

Runs each case through the `spikeroll` CLI (so it works on any version of the package), then prints
one line per case: the SHA-256 of the final parameters (the checkpoint's tensors, in order) and of
metrics.jsonl without its timing fields and spike counts. Run it before and after a change on the same machine and
thread count, and compare the lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

TIMING = {"seconds", "wall_seconds", "seconds_per_generation"}
# spike and SynOp counts (docs/energy.md): left out so that digests compare with runs made before
# the counts were recorded; counting changes no other value, which the digests then show
COUNTS = re.compile(r"((val|test)_)?(synops|synops_hidden|rate_layer\d+)")
CSNN = str(Path(__file__).resolve().parent.parent / "examples" / "snntorch_csnn.py") + ":make_csnn_strided"

CASES = {
    "digits-default": [],
    "openes": ["--strategy", "openes", "--generations", "8", "--eval-every", "4"],
    "bptt": ["--strategy", "bptt", "--lr", "0.002", "--generations", "30", "--eval-every", "10"],
    "loihi8": ["--neuron", "loihi", "--weight-bits", "8", "--generations", "12", "--eval-every", "6"],
    "workers2": ["--workers", "2", "--generations", "12", "--eval-every", "6", "--population", "64"],
    "module-snntorch": ["--model", CSNN, "--generations", "3", "--population", "16", "--eval-every", "3",
                        "--batch-size", "16"],
}


def digest_params(run: Path) -> str:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for tensor in state["params"]:
        h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def digest_metrics(run: Path) -> str:
    h = hashlib.sha256()
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = {k: v for k, v in json.loads(line).items() if k not in TIMING and not COUNTS.fullmatch(k)}
        h.update(json.dumps(record, sort_keys=True).encode())
    return h.hexdigest()[:16]


def spikeroll(*args: str) -> None:
    exe = Path(sys.executable).parent / "spikeroll"
    subprocess.run([str(exe), *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    args = parser.parse_args()
    for name in args.only:
        run = args.out / name
        spikeroll("train", "--quiet", "--out", str(run), "--overwrite", *CASES[name])
        print(f"{name:16s} params {digest_params(run)} metrics {digest_metrics(run)}", flush=True)
    if "digits-default" in args.only:  # resume: 100 generations, then on to the default's 150
        run = args.out / "resume"
        spikeroll("train", "--quiet", "--out", str(run), "--overwrite", "--generations", "100")
        spikeroll("train", "--quiet", "--out", str(run), "--resume", "--generations", "150")
        print(f"{'resume':16s} params {digest_params(run)} metrics {digest_metrics(run)}", flush=True)


if __name__ == "__main__":
    main()
