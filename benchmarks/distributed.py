"""Distributed runs on Ray, measured side by side on this machine, and a cost model for clusters.

    python benchmarks/distributed.py                      # digits default: 1 process vs Ray K = 1, 2
    python benchmarks/distributed.py --constants          # + the cost model's constants and its table
    python benchmarks/distributed.py --population 65536 --generations 3 --modes ray2   # memory check

Each mode trains the same run (same seed and settings) in a fresh run directory and reports the
median seconds per generation (the first two generations, which start the workers and compile, are
left out), the bytes that crossed between processes per generation (θ once per node, the unit
messages, the fitness scalars back) and whether its final parameters equal the first mode's bit for
bit. "ray1" is Ray with one worker using all the cores, so ray1 minus single is Ray's overhead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import tempfile
import time

import torch

from spikeroll.api import load_data
from spikeroll.config import TrainConfig
from spikeroll.training.callbacks import Callback
from spikeroll.training.distributed import peak_rss_bytes
from spikeroll.training.trainer import Trainer

CORES = os.cpu_count() or 1
MODES = {"single": dict(workers=0), "ray1": dict(workers=1, threads_per_worker=CORES),
         "ray2": dict(workers=2, threads_per_worker=max(1, CORES // 2))}


class Record(Callback):
    def __init__(self):
        self.seconds, self.bytes, self.put = [], [], []

    def on_step_end(self, trainer, record):
        self.seconds.append(record["seconds"])
        last = getattr(trainer.estimator.evaluator, "last", None)
        if last:
            self.bytes.append(last["bytes"])
            self.put.append(last["put_seconds"])

    def on_run_end(self, trainer, report):
        evaluator = trainer.estimator.evaluator
        self.workers = evaluator.worker_info() if hasattr(evaluator, "worker_info") else []
        self.params = [p.detach().clone() for p in trainer.net.params.values()]
        self.theta_bytes = sum(p.numel() * p.element_size() for p in trainer.net.params.values())
        self.report = report


class KillBusyWorker(Callback):
    """SIGKILLs a worker while it evaluates a unit of generation `at` (the cost of a lost worker)."""

    def __init__(self, at: int):
        self.at, self.killed = at, None

    def on_run_start(self, trainer):
        import threading

        def watch():
            while self.killed is None and trainer.generation <= self.at:
                busy = trainer.estimator.evaluator.busy_pids() if trainer.generation == self.at else []
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    self.killed = busy[0]
                time.sleep(0.001)

        threading.Thread(target=watch, daemon=True).start()


def run_mode(cfg: TrainConfig, data, mode: str, kill_at: int | None = None) -> dict:
    torch.set_num_threads(CORES)
    record = Record()
    callbacks = [record] + ([KillBusyWorker(kill_at)] if kill_at is not None and mode != "single" else [])
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(TrainConfig(**{**cfg.to_dict(), **MODES[mode]}), out, data, callbacks=callbacks)
        trainer.run(progress=False)
    steady = record.seconds[2:] or record.seconds
    return {"mode": mode, "seconds_per_generation": statistics.median(steady),
            "seconds": [round(x, 3) for x in record.seconds],
            "bytes_per_generation": statistics.median(record.bytes) if record.bytes else 0,
            "theta_put_seconds": statistics.median(record.put) if record.put else 0.0,
            "theta_bytes": record.theta_bytes, "val_accuracy": record.report["val_accuracy"],
            "worker_peak_rss_mib": [round(w["peak_rss_bytes"] / 2**20) for w in record.workers],
            "driver_peak_rss_mib": round(peak_rss_bytes() / 2**20), "params": record.params}


def unit_size_check(batch: int = 128, population: int = 128) -> list[str]:
    """Whether the population's fitness floats depend on the unit size or on the thread count
    (digits-sized input, random frames; both the fused kernel and the PyTorch path)."""
    from spikeroll.es.evaluators import LocalEvaluator
    from spikeroll.es.strategies import EvolutionStrategy
    from spikeroll.nets.model import SpikingNet

    gen = torch.Generator().manual_seed(0)
    frames = (torch.rand(batch, 10, 2, 34, 34, generator=gen) < 0.1).to(torch.uint8)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    lines = []
    for kernel in (True, False):
        for hidden in ([128], [64, 32]):
            net = SpikingNet([2312, *hidden, 10], seed=1)
            net.use_kernel = kernel
            strategy = EvolutionStrategy(net.params, population, 1, 3)
            results = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for unit in (8, 16, 32, 64):
                    local = LocalEvaluator(net, strategy, 1.0, 10, unit)
                    results[threads, unit] = local.population_fitness(5, 0.05, frames, labels)[0]
            ref = results[1, 8]
            diff = {k: int((v != ref).sum()) for k, v in results.items()}
            worst = max(float((v - ref).abs().max()) for v in results.values())
            lines.append(f"{'kernel' if kernel else 'pytorch'} hidden {hidden}: members differing from (1 thread, "
                         f"unit 8) {diff}, largest difference {worst:.2g}")
    torch.set_num_threads(CORES)
    return lines


# cost model -----------------------------------------------------------------------------------
def measure_constants(batch: int, hiddens=(128, 512, 2048), unit=128) -> dict:
    """Single-thread seconds per unit (a + b·pairs) and per pair of the driver's update, per hidden
    width; Ray's per-unit round trip and θ's put+get throughput."""
    from spikeroll.es.evaluators import LocalEvaluator
    from spikeroll.es.strategies import EvolutionStrategy
    from spikeroll.nets.model import SpikingNet

    torch.set_num_threads(1)
    frames = (torch.rand(batch, 10, 2, 34, 34) < 0.1).to(torch.uint8)
    labels = torch.randint(0, 10, (batch,))
    constants = {"batch": batch, "unit_pairs": unit, "eval": {}, "update_per_pair": {}}
    for hidden in hiddens:
        net = SpikingNet([2312, hidden, 10])
        strategy = EvolutionStrategy(net.params, 2 * unit, 1, 0)
        local = LocalEvaluator(net, strategy, 1.0, 10, unit)
        times = {}
        for pairs in (unit // 4, unit):
            local.unit_fitness(0, 0.05, frames, labels, range(pairs))  # warm-up (kernel compile, caches)
            start = time.perf_counter()
            local.unit_fitness(1, 0.05, frames, labels, range(pairs))
            times[pairs] = time.perf_counter() - start
        b = (times[unit] - times[unit // 4]) / (unit - unit // 4)
        constants["eval"][hidden] = (max(times[unit] - b * unit, 0.0), b)
        start = time.perf_counter()
        strategy.gradient(1, torch.randn(2 * unit), 0.05, unit)
        constants["update_per_pair"][hidden] = (time.perf_counter() - start) / unit
    constants.update(ray_constants())
    torch.set_num_threads(CORES)
    return constants


def ray_constants() -> dict:
    import numpy as np
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    init = time.perf_counter() - start

    @ray.remote(num_cpus=1)
    class Echo:
        def unit(self, generation, sigma, theta, start, stop):
            return np.zeros(2 * (stop - start), np.float32), np.zeros(2 * (stop - start), np.float32), 0

        def fetch(self, theta):
            return float(ray.get(theta[0])[0][0])

    actors = [Echo.remote() for _ in range(2)]
    ray.get([a.unit.remote(0, 0.0, [None], 0, 128) for a in actors])
    calls = 400
    start = time.perf_counter()
    ray.get([actors[i % 2].unit.remote(0, 0.05, [None], 0, 128) for i in range(calls)])
    round_trip = (time.perf_counter() - start) / calls
    theta = [np.random.rand(2312 * 2048).astype(np.float32)]  # 19 MB: θ at hidden 2048
    start = time.perf_counter()
    ref = ray.put(theta)
    put = time.perf_counter() - start
    start = time.perf_counter()
    ray.get(actors[0].fetch.remote([ref]))
    fetch = time.perf_counter() - start
    ray.shutdown()
    return {"ray_init_s": init, "unit_round_trip_s": round_trip, "put_bytes_per_s": theta[0].nbytes / put,
            "fetch_bytes_per_s": theta[0].nbytes / fetch}


def predict(c: dict, population: int, hidden: int, workers: int, bandwidth=1.25e9, latency=2e-4,
            workers_per_node=16, driver_cores=16) -> dict:
    """Seconds per generation and parallel efficiency of K single-thread workers, 16 to a node, on
    a 10 Gbit/s network (assumed: this machine has no network), the driver's update spread over
    its node's 16 cores (a GEMM, see docs/distributed.md)."""
    pairs, unit = population // 2, c["unit_pairs"]
    units = math.ceil(pairs / unit)
    a, b = c["eval"][hidden]  # a unit costs a + b·pairs alone; a is the first layer's shared x·Wᵀ
    theta = 4 * (2312 * hidden + hidden + 10 * hidden + 10)
    nodes = math.ceil(workers / workers_per_node)
    driver = pairs * c["update_per_pair"][hidden] / driver_cores + theta / c["put_bytes_per_s"]
    comm = theta * nodes / bandwidth + latency + units * c["unit_round_trip_s"] + 8 * population / bandwidth
    compute = a + math.ceil(units / workers) * b * unit  # a worker computes x·Wᵀ once per generation
    total = driver + comm + compute
    serial = driver + a + b * pairs  # one process
    parts = {"communication": comm, "compute": compute, "driver": driver}
    return {"seconds": total, "efficiency": serial / (workers * total), "comm": comm, "compute": compute,
            "driver": driver, "bound": max(parts, key=parts.get)}


def cost_table(c: dict) -> str:
    rows = ["| population | hidden | workers | s/gen | efficiency | compute | driver | communication | bound |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for population in (4096, 16384, 65536, 262144):
        for hidden in (128, 512, 2048):
            for workers in (8, 32, 256):
                p = predict(c, population, hidden, workers)
                rows.append(f"| {population:,} | {hidden} | {workers} | {p['seconds']:.3f} | {p['efficiency']:.2f} | "
                            f"{p['compute']:.3f} | {p['driver']:.3f} | {p['comm']:.3f} | {p['bound']} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML/JSON config (default: the digits default run)")
    parser.add_argument("--data-dir")
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--population", type=int)
    parser.add_argument("--modes", default="single,ray1,ray2")
    parser.add_argument("--constants", action="store_true", help="measure the cost model's constants, print its table")
    parser.add_argument("--kill-at", type=int, help="SIGKILL a busy worker in this generation (Ray modes)")
    parser.add_argument("--unit-check", action="store_true",
                        help="only check whether fitness floats depend on the unit size or thread count")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.unit_check:
        print("\n".join(unit_size_check()))
        return
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    overrides = {"generations": args.generations, "eval_every": 10**9, "checkpoint_every": 10**9, "device": "cpu"}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.population:
        overrides["population"] = args.population
    cfg = TrainConfig(**{**cfg.to_dict(), **overrides})
    data = load_data(cfg, progress=False)
    results = [run_mode(cfg, data, mode, args.kill_at) for mode in args.modes.split(",")]
    first = results[0].pop("params")
    for r in results[1:]:
        r["identical_to_" + results[0]["mode"]] = all(torch.equal(a, b) for a, b in zip(first, r.pop("params")))
    out = {"cores": CORES, "load_average": os.getloadavg(), "population": cfg.population, "hidden": cfg.hidden,
           "batch_size": cfg.batch_size, "modes": results}
    if args.constants:
        constants = measure_constants(cfg.batch_size)
        out["constants"] = constants
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    print(f"{CORES} cores, load average {out['load_average'][0]:.1f}; population {cfg.population}, "
          f"hidden {cfg.hidden}, batch {cfg.batch_size}, {cfg.generations} generations")
    for r in results:
        same = [f"{k}={v}" for k, v in r.items() if k.startswith("identical")]
        print(f"{r['mode']:>7}: {r['seconds_per_generation']:.3f} s/gen, "
              f"{r['bytes_per_generation'] / 1e6:.3f} MB/gen (θ {r['theta_bytes'] / 1e6:.3f} MB, "
              f"put {r['theta_put_seconds'] * 1e3:.1f} ms), val {r['val_accuracy']:.4f}, worker peak RSS "
              f"{r['worker_peak_rss_mib']} MiB, driver peak RSS {r['driver_peak_rss_mib']} MiB {' '.join(same)}")
        if args.kill_at is not None:
            print(f"         seconds of each generation: {r['seconds']}")
    if args.constants:
        print(json.dumps(out["constants"], indent=1))
        print(cost_table(out["constants"]))


if __name__ == "__main__":
    main()
