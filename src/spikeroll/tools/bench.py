"""`spikeroll bench`: seconds and peak memory of one generation of EGGROLL, of full-rank OpenAI-ES,
and of plain inference over as many samples as a generation evaluates — same network, same data,
same thread count.

Cases (each measured in a fresh Python subprocess, warm-up then the median of K repeats):

* eggroll    one full `Trainer.step()` (minibatch, noise, population forward, fitness, shaping,
             ES update, optimizer step) with rank-r perturbations;
* openes     the same generation with full-rank noise (strategy "openes");
* bptt       (only when asked for: `--cases eggroll,bptt`) one surrogate-gradient BPTT step on one
             minibatch of the same batch size: the forward stores every time step for the
             backward pass, so its memory grows with T while an ES generation's does not
             (`benchmarks/memory_vs_T.py`);
* inference  the unperturbed network evaluating population x batch *distinct* samples with the same
             forward code (`population_logits` without noise), in batches sized to the trainer's
             activation budget (`ACTIVATION_BUDGET_BYTES`, the same budget that sizes EGGROLL's pair
             chunks), so its working memory is comparable to a generation's.

Peak memory is the working memory of the timed repeats: the highest RSS while they run minus the
RSS just before them. The baseline is taken after setup (network, data, trainer built) and the
warm-up, with freed heap pages handed back to the OS (malloc_trim), so it holds persistent state —
parameters, data, Adam's moments, lazily initialised library buffers — and the peak holds what one
generation (or one inference pass) allocates on top: activations, noise, gradients. On Linux the
peak-RSS mark is reset at that point (writing 5 to /proc/self/clear_refs), so `ru_maxrss` (KiB)
afterwards is the peak of the timed work alone; where that reset is unavailable the lifetime
`ru_maxrss` is used (setup transients can then hide a smaller work peak). On CUDA it is
`torch.cuda.max_memory_allocated()` minus the memory allocated at the same point. RSS counts every
page touched (allocator slack included), so tiny configs read a few MiB of noise.

Input frames are sparse random binary frames (each bit on with probability `density`): input 2312
is shaped (T, 2, 34, 34) like N-MNIST, other sizes (T, input, 1, 1); the model flattens dims 2+.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from spikeroll.config import TrainConfig, check_population, check_rank
from spikeroll.errors import SpikerollError
from spikeroll.es.evaluators import ACTIVATION_BUDGET_BYTES, auto_unit_pairs
from spikeroll.memory import max_rss_bytes, reset_peak_rss, status_bytes
from spikeroll.tools.isolate import run_isolated
from spikeroll.training.factories import make_network, resolve_device
from spikeroll.training.trainer import Trainer

CASES = ("eggroll", "openes", "inference", "bptt")
DEFAULT_CASES = ("eggroll", "openes", "inference")
CLASSES = 10
NMNIST_INPUT = 2 * 34 * 34
# Inference stores population x batch distinct samples as uint8; beyond this the pool is cycled.
INFERENCE_POOL_BYTES = 1 << 30


@dataclass
class BenchConfig:
    """The network, population, data and measurement settings of `spikeroll bench`."""

    hidden: list[int] = field(default_factory=lambda: [128])
    population: int = 512
    batch_size: int = 64
    time_bins: int = 10
    rank: int = 1
    input: int = NMNIST_INPUT
    repeats: int = 3
    warmup: int = 1
    density: float = 0.05
    threads: int | None = None  # None: torch's default in this process, passed to every subprocess
    device: str = "cpu"
    seed: int = 0
    inference_batch: int | None = None  # samples per inference call; None: sized to the activation budget

    @property
    def sizes(self) -> list[int]:
        """Layer widths: input, the hidden layers, the classes."""
        return [self.input, *self.hidden, CLASSES]

    def validate(self) -> BenchConfig:
        """This config, or a SpikerollError naming the first setting out of range and a value to try."""
        checks = [
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1; try --batch-size 64"),
            (self.time_bins >= 1, f"time_bins={self.time_bins} must be >= 1; try --time-bins 10"),
            (self.input >= 1, f"input={self.input} must be >= 1; try --input 2312"),
            (len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
             f"hidden={self.hidden} must list positive widths; try --hidden 128"),
            (self.repeats >= 1, f"repeats={self.repeats} must be >= 1; try --repeats 3"),
            (self.warmup >= 0, f"warmup={self.warmup} must be >= 0"),
            (0.0 <= self.density <= 1.0, f"density={self.density} must be in [0, 1]; try --density 0.05"),
            (self.threads is None or self.threads >= 1, f"threads={self.threads} must be >= 1"),
            (self.inference_batch is None or self.inference_batch >= 1,
             f"inference_batch={self.inference_batch} must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise SpikerollError(message)
        check_population(self.population)
        check_rank(self.rank, list(zip(self.sizes[1:], self.sizes[:-1])))  # (out, in) of each weight matrix
        return self


# what each case does -------------------------------------------------------------------------------
def frame_shape(cfg: BenchConfig) -> tuple[int, ...]:
    """One sample: (T, 2, 34, 34) for the N-MNIST input size, else (T, input, 1, 1)."""
    if cfg.input == NMNIST_INPUT:
        return (cfg.time_bins, 2, 34, 34)
    return (cfg.time_bins, cfg.input, 1, 1)


def synthetic_frames(cfg: BenchConfig, n: int, offset: int = 0):
    """n sparse random binary samples (uint8), generated in small blocks so setup stays light."""

    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + offset)
    out = torch.empty(n, *frame_shape(cfg), dtype=torch.uint8)
    block = max(1, (16 << 20) // max(1, out[0].numel() * 4))
    for start in range(0, n, block):
        stop = min(n, start + block)
        out[start:stop] = torch.rand(stop - start, *frame_shape(cfg), generator=gen) < cfg.density
    return out


def synthetic_data(cfg: BenchConfig) -> SimpleNamespace:
    """A dataset in the shape Trainer expects: one minibatch of training data, tiny val/test."""

    gen = torch.Generator().manual_seed(cfg.seed)
    labels = torch.randint(0, CLASSES, (cfg.batch_size,), generator=gen)
    train = SimpleNamespace(frames=synthetic_frames(cfg, cfg.batch_size), labels=labels)
    small = SimpleNamespace(frames=train.frames[:1], labels=labels[:1])
    _, polarities, height, width = frame_shape(cfg)
    return SimpleNamespace(train=train, val=small, test=small, classes=CLASSES,
                           sensor_size=(width, height, polarities))


def train_config(cfg: BenchConfig, strategy: str):
    """The TrainConfig of a bench case: the bench's network and population under `strategy`."""
    return TrainConfig(hidden=list(cfg.hidden), population=cfg.population, batch_size=cfg.batch_size,
                       time_bins=cfg.time_bins, rank=cfg.rank, strategy=strategy, device=cfg.device,
                       seed=cfg.seed, generations=1_000_000).validate()


def inference_batch(cfg: BenchConfig) -> int:
    """Samples per inference call: float inputs plus one layer's currents within the trainer's
    activation budget (the budget that also sizes EGGROLL's pair chunks)."""
    if cfg.inference_batch:
        return cfg.inference_batch
    per_sample = cfg.time_bins * (cfg.input + max(cfg.sizes[1:])) * 4
    return max(1, min(cfg.population * cfg.batch_size, ACTIVATION_BUDGET_BYTES // per_sample))


def inference_pool(cfg: BenchConfig) -> int:
    """Distinct samples inference stores (all N x B unless that exceeds INFERENCE_POOL_BYTES)."""
    total = cfg.population * cfg.batch_size
    return max(1, min(total, INFERENCE_POOL_BYTES // math.prod(frame_shape(cfg))))


def chunk_pairs(cfg: BenchConfig, strategy: str = "eggroll") -> int:
    """Pairs the trainer evaluates at once for this config and strategy."""
    return auto_unit_pairs(cfg.population // 2, cfg.sizes, cfg.batch_size, cfg.time_bins,
                           cfg.rank if strategy == "eggroll" else None, resolve_device(cfg.device))


def weight_elements(cfg: BenchConfig) -> int:
    """Weight-matrix elements of the network: Σ m·n over its layers."""
    return sum(a * b for a, b in zip(cfg.sizes[:-1], cfg.sizes[1:]))


def full_rank_noise_bytes(cfg: BenchConfig) -> int:
    """N·Σ m·n·4: full-rank float32 weight noise for the whole population, if it were materialised."""
    return cfg.population * weight_elements(cfg) * 4


# measurement (runs inside the subprocess) ----------------------------------------------------------
class _PeakMeter:
    """Peak memory the work adds after `start()`: RSS on CPU, allocated bytes on CUDA."""

    def __init__(self, device):

        self.cuda = device.type == "cuda"
        self.torch = torch

    def start(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
            self.baseline = self.torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated() - allocated after setup and warm-up"
            return
        if reset_peak_rss():
            self.method = "ru_maxrss during the timed repeats (peak mark reset) - RSS after setup and warm-up"
        else:
            self.method = "ru_maxrss (lifetime peak) - RSS after setup and warm-up"
        rss = status_bytes("VmRSS")
        self.baseline = rss if rss is not None else max_rss_bytes()

    def peak(self) -> int:
        if self.cuda:
            return max(0, self.torch.cuda.max_memory_allocated() - self.baseline)
        return max(0, max_rss_bytes() - self.baseline)


def _timed(work, cfg: BenchConfig, device, meter: _PeakMeter) -> list[float]:
    """Warm up, then start the memory meter and time each repeat."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(cfg.warmup):
        work()
    meter.start()
    times = []
    for _ in range(cfg.repeats):
        sync()
        start = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - start)
    return times


def run_case(cfg: BenchConfig, case: str) -> dict:
    """Set up, warm up and time one case in this process; returns seconds (median), peak bytes."""


    if case not in CASES:
        raise SpikerollError(f"unknown bench case {case!r}; choose one of {', '.join(CASES)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.matmul(torch.ones(64, 64, device=device), torch.ones(64, 64, device=device))  # library init
    with tempfile.TemporaryDirectory() as tmp:
        if case in ("eggroll", "openes", "bptt"):
            trainer = Trainer(train_config(cfg, case), tmp, synthetic_data(cfg), overwrite=True)

            work = trainer.step  # one generation (BPTT: one step); each call advances it
        else:
            net = make_network(train_config(cfg, "eggroll"), cfg.input, CLASSES, device)
            total = cfg.population * cfg.batch_size
            pool_n = inference_pool(cfg)
            pool = synthetic_frames(cfg, pool_n, offset=1)
            step = inference_batch(cfg)

            @torch.no_grad()
            def work():
                for start in range(0, total, step):
                    idx = torch.arange(start, min(start + step, total)) % pool_n
                    net.population_logits(pool[idx].to(device, torch.float32))

        meter = _PeakMeter(device)
        times = _timed(work, cfg, device, meter)
        return {"seconds": statistics.median(times), "times": times, "peak_bytes": meter.peak(),
                "baseline_bytes": meter.baseline, "memory_method": meter.method,
                "torch_threads": torch.get_num_threads(), "pid": os.getpid()}


def measure_case(cfg: BenchConfig, case: str, timeout: float | None = None) -> dict:
    """Run one case in a fresh Python process (its own peak memory); returns run_case's dict."""

    outcome = run_isolated(run_case, cfg, case, timeout=timeout)
    if outcome.ok:
        return outcome.value
    if outcome.timed_out:
        raise SpikerollError(f"bench case {case} ran past {timeout:.0f} s; try a smaller --population "
                             "or --repeats")
    if outcome.out_of_memory:
        raise SpikerollError(f"bench case {case} ran out of memory or was killed ({outcome.failure}); "
                             "try a smaller --population or --hidden")
    raise SpikerollError(f"bench case {case} failed in its subprocess: {outcome.failure}")


def parse_cases(text: str) -> tuple[str, ...]:
    """--cases "eggroll,bptt" as a tuple, or a SpikerollError naming the unknown case."""
    cases = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [case for case in cases if case not in CASES]
    if unknown or not cases:
        raise SpikerollError(f"--cases {text!r} names no known case ({', '.join(unknown) or 'empty'}); "
                             f"choose from {','.join(CASES)}")
    return cases


def run_bench(cfg: BenchConfig, cases=DEFAULT_CASES) -> dict:
    """The `spikeroll bench --json` object: config, median seconds and peak bytes per case, threads."""

    cfg = dataclasses.replace(cfg, threads=cfg.threads or torch.get_num_threads()).validate()
    results = {case: measure_case(cfg, case) for case in cases}
    config = dataclasses.asdict(cfg)
    config.update(
        chunk_pairs=chunk_pairs(cfg),
        openes_chunk_pairs=chunk_pairs(cfg, "openes"),
        inference_batch=inference_batch(cfg),
        inference_samples=cfg.population * cfg.batch_size,
        inference_distinct=inference_pool(cfg),
        full_rank_noise_bytes=full_rank_noise_bytes(cfg),
        memory_method=next(iter(results.values()))["memory_method"],
    )
    threads = {r["torch_threads"] for r in results.values()}
    return {
        "config": config,
        "seconds": {case: r["seconds"] for case, r in results.items()},
        "peak_bytes": {case: r["peak_bytes"] for case, r in results.items()},
        "torch_threads": threads.pop() if len(threads) == 1 else sorted(threads),
    }


# reporting ------------------------------------------------------------------------------------------
def _mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def format_report(result: dict) -> str:
    """The report `spikeroll bench` prints: the settings, then seconds and peak memory per case."""
    c, sec, mem = result["config"], result["seconds"], result["peak_bytes"]
    hidden = ",".join(map(str, c["hidden"]))
    lines = [
        f"spikeroll bench: input {c['input']}, hidden {hidden}, population {c['population']}, "
        f"batch {c['batch_size']}, T {c['time_bins']}, rank {c['rank']}, density {c['density']}, "
        f"device {c['device']}, {result['torch_threads']} torch threads",
        f"median of {c['repeats']} repeats after {c['warmup']} warm-up; each case in a fresh process",
        "",
        f"{'case':<10} {'s/generation':>12} {'vs eggroll':>10} {'peak MiB':>9} {'vs eggroll':>10}",
    ]
    for case in sec:
        lines.append(f"{case:<10} {sec[case]:>12.4f} {_ratio(sec[case], sec.get('eggroll', 0)):>10} "
                     f"{_mib(mem[case]):>9} {_ratio(mem[case], mem.get('eggroll', 0)):>10}")
    lines.append("")
    if "openes" in mem:
        lines.append(
            f"full-rank noise for the whole population (N·Σm·n·4): {_mib(c['full_rank_noise_bytes'])} MiB"
            f" vs openes peak {_mib(mem['openes'])} MiB; the trainer draws it {c['openes_chunk_pairs']} pairs at "
            f"a time ({_mib(c['openes_chunk_pairs'] * c['full_rank_noise_bytes'] / c['population'])} MiB per chunk)")
    if "inference" in mem:
        lines.append(
            f"inference: {c['inference_samples']} samples (N x B; {c['inference_distinct']} distinct, cycled "
            f"beyond) in batches of {c['inference_batch']} (inputs + one layer's currents within the trainer's "
            "activation budget)")
    if "bptt" in mem:
        lines.append(f"bptt: one surrogate-gradient step on one minibatch of {c['batch_size']} (all T steps stored)")
    lines.append(f"peak memory = {c['memory_method']}")
    return "\n".join(lines)
