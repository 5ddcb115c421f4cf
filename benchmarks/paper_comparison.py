"""Per-generation time and peak memory of EGGROLL (rank 1, 2, 4, 8) against full-rank OpenAI-ES for
several hidden widths, as in the EGGROLL paper's comparison.

Usage: python benchmarks/paper_comparison.py [--hidden 128,512,2048] [--ranks 1,2,4,8]
           [--population 128] [--batch-size 64] [--time-bins 10] [--repeats 2] [--warmup 1]
           [--threads N] [--device cpu] [--quick] [--out benchmarks/results]

Writes <out>/paper_comparison.md (a Markdown table), <out>/paper_comparison.png (matplotlib) and
<out>/paper_comparison.json (raw numbers). Each (width, method) cell is one `spikeroll.tools.bench` case
run in a fresh process: warm-up, then the median of --repeats generations; peak memory is the RSS
the timed generations add (see spikeroll/bench.py). The defaults (population 128, 2 repeats) keep
the whole run to a few minutes on 2 CPU cores; --quick (population 32, 1 repeat, widths 128,512)
is a smoke test. Full-rank noise is what limits OpenAI-ES: at width 2048 the population's noise is
N·2312·2048·4 bytes if kept whole (2.4 GB at N = 128), but the trainer draws it a few pairs at a
time, so --population can go up to 512 within memory, at the cost of time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from spikeroll.tools.bench import BenchConfig, chunk_pairs, full_rank_noise_bytes, measure_case


def widths(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=widths, default=[128, 512, 2048], help="hidden widths, comma-separated")
    p.add_argument("--ranks", type=widths, default=[1, 2, 4, 8], help="EGGROLL ranks, comma-separated")
    p.add_argument("--population", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--time-bins", type=int, default=10)
    p.add_argument("--input", type=int, default=2312)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's default]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="population 32, 1 repeat, widths 128,512")
    p.add_argument("--no-openes", action="store_true", help="skip the full-rank baseline")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.population, args.repeats, args.hidden = 32, 1, [w for w in args.hidden if w <= 512] or [128]
    return args


def _load() -> str | None:
    """1/5/15-minute load average: others' jobs on a shared machine slow every timing down."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else None


def _source_digest() -> str:
    """Hash of the package's source: cells measured under different code would not be comparable."""
    import hashlib

    import spikeroll

    digest = hashlib.sha256()
    for path in sorted(Path(spikeroll.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def run(args) -> dict:
    import torch

    threads = args.threads or torch.get_num_threads()
    methods = [("eggroll", r) for r in args.ranks] + ([] if args.no_openes else [("openes", None)])
    rows, started, source = [], time.time(), _source_digest()
    load_before = _load()
    for hidden in args.hidden:
        for strategy, rank in methods:
            cfg = BenchConfig(hidden=[hidden], population=args.population, batch_size=args.batch_size,
                              time_bins=args.time_bins, rank=rank or 1, input=args.input,
                              repeats=args.repeats, warmup=args.warmup, threads=threads,
                              device=args.device).validate()
            label = f"eggroll r={rank}" if strategy == "eggroll" else "openes"
            print(f"hidden {hidden:>5}  {label:<12} ...", end=" ", flush=True, file=sys.stderr)
            result = measure_case(cfg, strategy)
            print(f"{result['seconds']:.3f} s/gen, {result['peak_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
            rows.append({"hidden": hidden, "method": label, "strategy": strategy, "rank": rank,
                         "seconds": result["seconds"], "times": result["times"],
                         "peak_bytes": result["peak_bytes"], "chunk_pairs": chunk_pairs(cfg, strategy),
                         "full_rank_noise_bytes": full_rank_noise_bytes(cfg),
                         "memory_method": result["memory_method"]})
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"threads": threads},
        "rows": rows,
        "wall_seconds": round(time.time() - started, 1),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "source_digest": source,
        "source_changed_during_run": _source_digest() != source,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }


def markdown(result: dict) -> str:
    c, rows = result["config"], result["rows"]
    openes = {r["hidden"]: r for r in rows if r["strategy"] == "openes"}
    lines = [
        "# EGGROLL vs full-rank OpenAI-ES: one generation",
        "",
        f"Population {c['population']}, batch {c['batch_size']}, T = {c['time_bins']}, input {c['input']}, "
        f"one hidden LIF layer, 10 outputs; {c['threads']} torch threads on {c['device']} "
        f"({result['machine']}); median of {c['repeats']} generations after {c['warmup']} warm-up, "
        f"each cell in a fresh process. Wall time of the whole run: {result['wall_seconds']} s; "
        f"load average before/after: {result['load_average_before']} / {result['load_average_after']} "
        "(shared machine: timings are noisy). Source digest " + result["source_digest"]
        + (" — WARNING: the package's source changed during the run, cells are not comparable."
           if result["source_changed_during_run"] else "") + ".",
        "",
        "Peak memory: the RSS the timed generations add on top of setup and warm-up (network, data, "
        "Adam moments are in the baseline); full-rank noise = N·Σm·n·4 bytes, what OpenAI-ES's "
        "noise would take if the whole population's were kept at once (the trainer draws it "
        "`chunk` pairs at a time).",
        "",
        "| hidden | method | s / generation | peak MiB | time vs openes | memory vs openes | chunk (pairs) "
        "| full-rank noise MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = openes.get(r["hidden"])
        t_ratio = f"{r['seconds'] / base['seconds']:.2f}" if base else "-"
        m_ratio = f"{r['peak_bytes'] / base['peak_bytes']:.2f}" if base and base["peak_bytes"] else "-"
        lines.append(f"| {r['hidden']} | {r['method']} | {r['seconds']:.3f} | {r['peak_bytes'] / 2**20:.1f} | "
                     f"{t_ratio} | {m_ratio} | {r['chunk_pairs']} | {r['full_rank_noise_bytes'] / 2**20:.0f} |")
    lines += ["", f"Generated by `python benchmarks/paper_comparison.py` ({time.strftime('%Y-%m-%d %H:%M')}).", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        style = dict(marker="o", linestyle="--", color="black") if method == "openes" else dict(marker="o")
        hs = [r["hidden"] for r in mine]
        ax_t.plot(hs, [r["seconds"] for r in mine], label=method, **style)
        ax_m.plot(hs, [max(r["peak_bytes"], 1) / 2**20 for r in mine], label=method, **style)
    c = result["config"]
    for ax, ylabel in ((ax_t, "seconds per generation"), (ax_m, "peak memory added (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden width")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend()
    fig.suptitle(f"EGGROLL vs OpenAI-ES, population {c['population']}, batch {c['batch_size']}, "
                 f"T={c['time_bins']}, {c['threads']} threads ({c['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    if result["source_changed_during_run"]:
        print("warning: the spikeroll source changed during the run; rerun for comparable cells", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paper_comparison.json").write_text(json.dumps(result, indent=2))
    (args.out / "paper_comparison.md").write_text(markdown(result))
    plot(result, args.out / "paper_comparison.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
