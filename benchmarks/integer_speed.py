"""Seconds per generation of integer networks (--neuron loihi) beside the float network.

At `spikeroll bench`'s configuration (2312-128-10, population 512, batch 64, T = 10, rank 1, sparse
random frames of density 0.05), one full `Trainer.step()` per case. The cases are timed in
interleaved rounds (float, int8, ... then again), so a load that changes during the run (the
machine is shared) hits every case alike; the medians and their ratios to the float step are printed.

    python benchmarks/integer_speed.py [--rounds 7] [--threads 2]
    python benchmarks/integer_speed.py --hidden 256 --batch-size 256 --pool 2   # nmnist-subset's network
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from spikeroll.tools.bench import BenchConfig, synthetic_data, train_config
from spikeroll.training.trainer import Trainer

CASES = {  # name -> TrainConfig overrides
    "float eggroll": {},
    "int8 eggroll": {"neuron": "loihi", "weight_bits": 8},
    "int4 eggroll": {"neuron": "loihi", "weight_bits": 4},
    "ternary eggroll": {"neuron": "loihi", "weight_bits": 2},
    "int8 egg": {"neuron": "loihi", "weight_bits": 8, "strategy": "egg"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pool", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = BenchConfig(device="cpu", hidden=[args.hidden], batch_size=args.batch_size)
    data = synthetic_data(bench)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, (name, overrides) in enumerate(CASES.items()):
            cfg = dataclasses.replace(train_config(bench, "eggroll"), pool=args.pool, **overrides).validate()
            trainers[name] = Trainer(cfg, f"{tmp}/{i}", data, overwrite=True)
            trainers[name].step()  # warm-up: kernel compilation and caches
        times = {name: [] for name in CASES}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                trainer.step()
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["float eggroll"])
    print(f"2312-{args.hidden}-10 (pool {args.pool}), population {bench.population}, batch {bench.batch_size}, "
          f"T {bench.time_bins}, {args.threads} threads, median of {args.rounds} interleaved rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:16s} {median:7.3f} s/generation   {median / base:5.2f}x float")


if __name__ == "__main__":
    main()
