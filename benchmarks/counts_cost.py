"""What counting spikes costs: one generation (the population forward, fitness and the ES gradient)
with counts against the same generation without them, side by side in one process (docs/energy.md).

Each repeat times the two evaluators back to back on the same minibatch, alternating which goes
first; the ratio is median(with counts) / median(without), and the same of the minimum. The float
network runs the fused CPU kernel (per-job slots, summed after) unless --pytorch; --neuron loihi
runs the integer kernel.

Usage:
  python benchmarks/counts_cost.py                       # digits-sized: 2·17·17 -> 128 -> 10, T=10, pop 512, B 128
  python benchmarks/counts_cost.py --hidden 256,128 --repeats 15
  python benchmarks/counts_cost.py --neuron loihi
  python benchmarks/counts_cost.py --pytorch
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spikeroll.config import parse_widths
from spikeroll.es.evaluators import LocalEvaluator
from spikeroll.es.strategies import EvolutionStrategy, shape_fitness
from spikeroll.nets.integer import IntegerNet
from spikeroll.nets.model import SpikingNet


def main() -> None:
    """Time both evaluators and print their seconds and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2 * 17 * 17)
    parser.add_argument("--hidden", default="128")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--time-bins", type=int, default=10)
    parser.add_argument("--population", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--density", type=float, default=0.1, help="fraction of nonzero input entries")
    parser.add_argument("--neuron", choices=["lif", "loihi"], default="lif")
    parser.add_argument("--pytorch", action="store_true", help="the PyTorch path instead of the fused kernel")
    parser.add_argument("--threads", type=int, default=None, help="torch/kernel threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [args.inputs, *parse_widths(args.hidden), args.classes]
    gen = torch.Generator().manual_seed(0)
    frames = (torch.rand(args.batch_size, args.time_bins, args.inputs, generator=gen) < args.density).to(torch.uint8)
    labels = torch.randint(0, args.classes, (args.batch_size,), generator=gen)
    if args.neuron == "loihi":
        net = IntegerNet(sizes, 8, init_gain=2.0)
    else:
        net = SpikingNet(sizes, init_gain=2.0)
        net.use_kernel = not args.pytorch
    strategy = EvolutionStrategy(net.params, args.population, 1, 0)
    evaluators = {"with counts": LocalEvaluator(net, strategy, 1.0, args.time_bins, count=True),
                  "without": LocalEvaluator(net, strategy, 1.0, args.time_bins, count=False)}
    seconds = {name: [] for name in evaluators}
    def generation(evaluator, g: int) -> None:
        fitness, _ = evaluator.population_fitness(g, 0.05, frames, labels)
        strategy.gradient(g, shape_fitness(fitness, "centered_ranks"), 0.05, evaluator.unit_pairs(len(labels)))

    for evaluator in evaluators.values():  # compile and warm up
        generation(evaluator, 0)
    for repeat in range(args.repeats):
        order = list(evaluators) if repeat % 2 == 0 else list(reversed(evaluators))
        for name in order:
            start = time.perf_counter()
            generation(evaluators[name], repeat)
            seconds[name].append(time.perf_counter() - start)
    path = "integer kernel" if args.neuron == "loihi" else ("PyTorch path" if args.pytorch else "fused kernel")
    print(f"sizes {sizes}, T={args.time_bins}, population {args.population}, batch {args.batch_size}, {path}, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats")
    for name, values in seconds.items():
        print(f"{name:12s} median {statistics.median(values):.4f} s   min {min(values):.4f} s")
    ratio = statistics.median(seconds["with counts"]) / statistics.median(seconds["without"])
    fastest = min(seconds["with counts"]) / min(seconds["without"])
    print(f"ratio (with counts / without): median {ratio:.3f}, min {fastest:.3f}")
    print("population metrics:", evaluators["with counts"].metrics())


if __name__ == "__main__":
    main()
