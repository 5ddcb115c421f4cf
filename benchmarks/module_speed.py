"""Seconds and peak memory of one generation for a user's nn.Module trained by spikeroll.EGGROLL,
side by side in one run (each case in a fresh process, same threads, same synthetic minibatch):

  builtin        spikeroll's own 2312-128-10 LIF network, one Trainer.step() (the fused kernel)
  module         EGGROLL's generic path on the same network written as an snnTorch module
  module-torch   the generic path on the same network written in plain torch (a lean LIF loop)
  module-openes  the generic path with full-rank noise (OpenAI-ES) on the snnTorch module
  evotorch       EvoTorch's PGPE on the snnTorch module (a vectorised Problem: one call gets the
                 whole population; each member then runs through EvoTorch's functional module,
                 one after another, since snnTorch's spike function does not support torch.vmap)

Every module case does what a generation does: population forward on the minibatch, −cross-entropy
fitness, the ES update into p.grad (PGPE: its own ask/tell) and an Adam step.

    python benchmarks/module_speed.py [--population 512] [--batch-size 64] [--time-bins 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

from spikeroll.memory import keep_freed_memory
from spikeroll.tools.bench import BenchConfig, _PeakMeter, _timed, run_case, synthetic_data
from spikeroll.tools.isolate import run_isolated

CASES = ("builtin", "module", "module-torch", "module-openes", "evotorch")


class SnnTorchDense(nn.Module):
    """The built-in 2312-128-10 network in snnTorch: Linear–Leaky, Linear–Leaky without reset,
    logits = the output membrane averaged over time."""

    def __init__(self, hidden=128, beta=0.9):
        super().__init__()
        import snntorch as snn

        self.fc1, self.lif1 = nn.Linear(2312, hidden), snn.Leaky(beta=beta)
        self.fc2, self.lif2 = nn.Linear(hidden, 10), snn.Leaky(beta=beta, reset_mechanism="none")

    def forward(self, x):
        mem1, mem2, total = self.lif1.init_leaky(), self.lif2.init_leaky(), 0
        for t in range(x.shape[0]):
            spikes, mem1 = self.lif1(self.fc1(x[t].flatten(1)), mem1)
            _, mem2 = self.lif2(self.fc2(spikes), mem2)
            total = total + mem2
        return total / x.shape[0]


class TorchDense(nn.Module):
    """The same network with spikeroll's LIF written out in plain torch (v ← βv + I, spike when
    v ≥ 1, subtract reset), the readout a leaky integrator averaged over time."""

    def __init__(self, hidden=128, beta=0.9):
        super().__init__()
        self.fc1, self.fc2, self.beta = nn.Linear(2312, hidden), nn.Linear(hidden, 10), beta

    def forward(self, x):
        v = u = total = 0
        for t in range(x.shape[0]):
            v = self.beta * v + self.fc1(x[t].flatten(1))
            spikes = (v >= 1.0).to(v.dtype)
            v = v - spikes
            u = self.beta * u + self.fc2(spikes)
            total = total + u
        return total / x.shape[0]


def module_work(cfg: BenchConfig, case: str):
    from spikeroll.es.fitness import member_fitness
    from spikeroll.modules import EGGROLL

    data = synthetic_data(cfg).train
    x, labels = data.frames.transpose(0, 1).float(), data.labels
    model = TorchDense() if case == "module-torch" else SnnTorchDense()
    if case == "evotorch":
        return evotorch_work(cfg, model, x, labels)
    es = EGGROLL(model, population=cfg.population, rank=None if case == "module-openes" else cfg.rank, sigma=0.05,
                 chunk_pairs=cfg.inference_batch)  # (BenchConfig's spare field carries --chunk-pairs)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)

    def work():
        fitness, _ = member_fitness(es.population_forward(x), labels, 1.0)
        es.backward(fitness)
        opt.step()
    return work


def evotorch_work(cfg: BenchConfig, model: nn.Module, x, labels):
    from evotorch import Problem
    from evotorch.algorithms import PGPE
    from evotorch.neuroevolution.net import make_functional_module

    fnet = make_functional_module(model, disable_autograd_tracking=True)
    loss = nn.CrossEntropyLoss()

    def fitness(solutions: torch.Tensor) -> torch.Tensor:
        return torch.stack([-loss(fnet(theta, x), labels) for theta in solutions])

    center = torch.cat([p.detach().flatten() for p in model.parameters()])
    problem = Problem("max", fitness, solution_length=center.numel(), initial_bounds=(-0.05, 0.05), vectorized=True)
    searcher = PGPE(problem, popsize=cfg.population, center_init=center, center_learning_rate=0.02,
                    stdev_learning_rate=0.1, stdev_init=0.05, optimizer="adam", ranking_method="centered")
    return searcher.step


def run(cfg: BenchConfig, case: str, malloc_defaults: bool = False) -> dict:
    if case == "builtin":
        return run_case(cfg, "eggroll")
    if not malloc_defaults:  # as `spikeroll train --model` runs a module (modules.net.module_evaluator)
        keep_freed_memory()
    torch.set_num_threads(cfg.threads)
    torch.matmul(torch.ones(64, 64), torch.ones(64, 64))  # library init
    work = module_work(cfg, case)
    meter = _PeakMeter(torch.device("cpu"))
    times = _timed(work, cfg, torch.device("cpu"), meter)
    return {"seconds": statistics.median(times), "peak_bytes": meter.peak(), "times": times,
            "torch_threads": torch.get_num_threads()}


def measure(cfg: BenchConfig, case: str, malloc_defaults: bool = False) -> dict:
    """One case in a fresh process (spikeroll.tools.isolate), so each has its own peak memory."""
    outcome = run_isolated(run, cfg, case, malloc_defaults)
    if not outcome.ok:
        raise SystemExit(f"case {case} failed: {outcome.failure}")
    return outcome.value


def main() -> None:
    parser = argparse.ArgumentParser(description="EGGROLL on nn.Modules vs the built-in path vs EvoTorch")
    parser.add_argument("--population", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--time-bins", type=int, default=10)
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--chunk-pairs", type=int, default=None, help="module cases: pairs evaluated at once")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="module cases: keep glibc's allocator settings (spikeroll train --model changes them; "
                             "see spikeroll.memory.keep_freed_memory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = BenchConfig(population=args.population, batch_size=args.batch_size, time_bins=args.time_bins,
                      rank=args.rank, threads=args.threads, repeats=args.repeats, warmup=1,
                      inference_batch=args.chunk_pairs).validate()
    results = {}
    for case in args.cases.split(","):
        slow = case == "evotorch"  # a generation takes tens of seconds: one warm-up, one timed run
        results[case] = measure(dataclasses.replace(cfg, repeats=1) if slow else cfg, case, args.malloc_defaults)
        print(f"  {case}: {results[case]['seconds']:.3f} s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"config": dataclasses.asdict(cfg), "results": results}, indent=2))
        return
    module, builtin = results.get("module"), results.get("builtin")
    print(f"population {cfg.population}, minibatch {cfg.batch_size}, T {cfg.time_bins}, rank {cfg.rank}, "
          f"{cfg.threads} torch threads; median of {cfg.repeats} (evotorch: 1) after 1 warm-up, each in a fresh "
          f"process; module cases with glibc's {'default' if args.malloc_defaults else 'spikeroll train --model'} "
          "allocator settings")
    print(f"{'case':<14} {'s/generation':>12} {'vs builtin':>10} {'vs module':>10} {'peak MiB':>9}")
    ratio = lambda a, b: f"{a['seconds'] / b['seconds']:.2f}x" if b else "-"  # noqa: E731
    for case, r in results.items():
        print(f"{case:<14} {r['seconds']:>12.3f} {ratio(r, builtin):>10} {ratio(r, module):>10} "
              f"{r['peak_bytes'] / 2**20:>9.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
