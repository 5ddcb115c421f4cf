"""Peak memory and seconds of one EGGROLL generation against one BPTT step as the time bins T grow,
on the same network and minibatch (docs/results/memory-vs-T.md).

Each (T, case) runs in a fresh process through `spikeroll bench`'s measurement (`run_bench`): the
peak is the RSS the timed work adds above the state after setup and warm-up. BPTT stores every
time step for its backward pass; an ES generation only runs forward, in pair chunks sized to a
fixed activation budget, so its memory should stay flat in T while its time grows.

Usage:
  python benchmarks/memory_vs_T.py                           # 578-256-10, pop 512, batch 256, T 10,50,100,300
  python benchmarks/memory_vs_T.py --time-bins 10,50 --repeats 1 --json out.json
"""

from __future__ import annotations

import argparse
import json

from spikeroll.config import parse_widths
from spikeroll.tools.bench import BenchConfig, run_bench


def main() -> None:
    """Measure every T, print a markdown table (and optionally the raw JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-bins", default="10,50,100,300")
    parser.add_argument("--hidden", default="256")
    parser.add_argument("--input", type=int, default=578, help="578 = 2x17x17: N-MNIST pooled 2x2")
    parser.add_argument("--population", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write every measurement to this file")
    args = parser.parse_args()
    rows = []
    for t in parse_widths(args.time_bins):
        cfg = BenchConfig(hidden=parse_widths(args.hidden), population=args.population, batch_size=args.batch_size,
                          time_bins=t, input=args.input, density=args.density, repeats=args.repeats,
                          threads=args.threads)
        result = run_bench(cfg, ("eggroll", "bptt"))
        rows.append({"T": t, **{f"{case}_{key}": result[key][case] for case in ("eggroll", "bptt")
                                for key in ("seconds", "peak_bytes")}, "threads": result["torch_threads"]})
        print(f"T={t} done: {rows[-1]}", flush=True)
    mib = 2 ** 20
    print(f"\nnetwork {args.input}-{args.hidden}-10, population {args.population}, batch {args.batch_size}, "
          f"density {args.density}, median of {args.repeats}, {rows[0]['threads']} torch threads\n")
    print("| T | ES s/generation | ES peak MiB | BPTT s/step | BPTT peak MiB | BPTT / ES memory |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['T']} | {r['eggroll_seconds']:.3f} | {r['eggroll_peak_bytes'] / mib:.0f} | "
              f"{r['bptt_seconds']:.3f} | {r['bptt_peak_bytes'] / mib:.0f} | "
              f"{r['bptt_peak_bytes'] / max(1, r['eggroll_peak_bytes']):.2f}x |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
