"""The training loop: minibatch -> population fitness -> shaped ES gradient -> torch.optim step,
with periodic evaluation of the mean network, atomic checkpoints, metrics.jsonl and resume."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikeroll import kernels
from spikeroll.augment import augment_frames, shift_frames, shifts
from spikeroll.checkpoint import load_checkpoint, save_checkpoint, save_json
from spikeroll.config import ARCHITECTURE_KEYS, TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.model import SpikingNet, input_features
from spikeroll.noise import counter_seed
from spikeroll.strategies import EvolutionStrategy, shape_fitness

CHECKPOINT = "checkpoint.pt"
REPORT = "report.json"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
# Pairs are evaluated in chunks whose live activations stay within this budget, so memory stays
# bounded for any population. On the PyTorch path, chunks near the CPU cache size measured about 2x
# faster than the whole population at once; the fused kernel keeps only small tensors alive.
ACTIVATION_BUDGET_BYTES = 32 * 2**20


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpikerollError(f"device {name!r} was requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def schedule_factor(kind: str, generation: int, total: int) -> float:
    """1 at the start, falling to 0 at the end (cosine/linear) or staying 1 (constant)."""
    progress = min(generation / max(total, 1), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1.0 - progress
    return 1.0


def sigma_at(cfg: TrainConfig, generation: int) -> float:
    if cfg.sigma_final is None:
        return cfg.sigma
    f = schedule_factor(cfg.lr_schedule if cfg.lr_schedule != "constant" else "linear", generation, cfg.generations)
    return cfg.sigma_final + (cfg.sigma - cfg.sigma_final) * f


def batch_indices(seed: int, generation: int, n: int, batch_size: int) -> torch.Tensor:
    """Minibatch of generation g: a slice of a per-epoch permutation, a pure function of (seed, g)."""
    batch_size = min(batch_size, n)
    per_epoch = max(n // batch_size, 1)
    epoch, slot = divmod(generation, per_epoch)
    gen = torch.Generator().manual_seed(counter_seed(seed, epoch, -1, 0))
    return torch.randperm(n, generator=gen)[slot * batch_size : (slot + 1) * batch_size]


def make_network(cfg: TrainConfig, in_features: int, classes: int, device) -> SpikingNet:
    return SpikingNet([in_features, *cfg.hidden, classes], beta=cfg.beta, threshold=cfg.threshold,
                      reset=cfg.reset, readout=cfg.readout, init_gain=cfg.init_gain, seed=cfg.seed,
                      device=device, pool=cfg.pool)


@torch.no_grad()
def accuracy(net: SpikingNet, split, batch: int = 1000, tta_shift: int = 0) -> float | None:
    """Accuracy of the plain network on a data split (None when the split is absent).

    tta_shift > 0 is test-time augmentation: each recording is classified by its class
    probabilities averaged over every translation by up to tta_shift pixels ((2·s + 1)² forward
    passes per recording), instead of one pass on the recording as it is."""
    if tta_shift < 0:
        raise SpikerollError(f"tta_shift={tta_shift} must be >= 0 (0 = one pass per recording)")
    if split is None or len(split.labels) == 0:
        return None
    correct = 0
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        if tta_shift == 0:
            pred = net.logits(frames).argmax(-1)
        else:
            pred = sum(torch.softmax(net.logits(shift_frames(frames, dy, dx)), -1)
                       for dy, dx in shifts(tta_shift)).argmax(-1)
        correct += int((pred.cpu() == split.labels[start : start + batch]).sum())
    return correct / len(split.labels)


def member_fitness(logits: torch.Tensor, labels: torch.Tensor, temperature: float):
    """logits (N, B, C) -> fitness = −cross-entropy per member (N,), and accuracy per member (N,)."""
    n, b, c = logits.shape
    ce = F.cross_entropy(logits.reshape(n * b, c) / temperature, labels.repeat(n), reduction="none")
    acc = (logits.argmax(-1) == labels).float().mean(1)
    return -ce.view(n, b).mean(1), acc


def pair_activation_bytes(cfg: TrainConfig, sizes: list[int], batch: int) -> int:
    """Activation bytes one antithetic pair keeps alive during the population forward."""
    if kernels.applies(resolve_device(cfg.device), autograd=cfg.strategy == "bptt"):
        # fused kernel: the first layer's per-pair product (x·B_k, or x·E_kᵀ for full rank) plus the
        # next layers' currents of both members (the kernel's output and the readout's input)
        first = sizes[1] if cfg.strategy == "openes" else cfg.rank
        return cfg.time_bins * batch * 4 * (first + 2 * 2 * max(sizes[2:]))
    # PyTorch path: a layer's currents and spikes for both members plus a temporary of that size
    return 3 * cfg.time_bins * 2 * batch * max(sizes[1:]) * 4


def auto_chunk_pairs(cfg: TrainConfig, net: SpikingNet, batch: int) -> int:
    if cfg.chunk_pairs:
        return cfg.chunk_pairs
    pairs = cfg.population // 2
    largest = max(1, min(pairs, ACTIVATION_BUDGET_BYTES // pair_activation_bytes(cfg, net.sizes, batch)))
    # prefer equal chunks when a divisor is close enough (no small remainder chunk)
    divisor = max(d for d in range(1, largest + 1) if pairs % d == 0)
    return divisor if 2 * divisor >= largest else largest


class Trainer:
    """Owns a run directory: config.json, metrics.jsonl, checkpoint.pt and report.json."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data, *, resume=False, overwrite=False):
        self.cfg = cfg.validate()
        self.out = Path(out_dir)
        self.data = data
        self._prepare_run_dir(resume, overwrite)
        self.device = resolve_device(cfg.device)
        in_features = input_features(tuple(data.train.frames.shape[2:]), cfg.pool)  # one time bin
        classes = int(max(int(data.train.labels.max()), 9)) + 1
        self.net = make_network(cfg, in_features, classes, self.device)
        self.strategy = None if cfg.strategy == "bptt" else EvolutionStrategy(
            self.net, cfg.population, cfg.rank if cfg.strategy == "eggroll" else None, cfg.seed)
        params = list(self.net.params.values())
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.momentum, 0.999),
                                               weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda g: schedule_factor(cfg.lr_schedule, g, cfg.generations))
        self.generation, self.elapsed = 0, 0.0
        if resume and (self.out / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.out / CHECKPOINT))
        elif cfg.init_from:
            self._initialise_from(Path(cfg.init_from))
        save_json(self.out / CONFIG, cfg.to_dict())

    # run directory ---------------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool, overwrite: bool) -> None:
        has_run = (self.out / CHECKPOINT).exists() or (self.out / REPORT).exists()
        if overwrite and self.out.exists():
            for name in (CHECKPOINT, REPORT, METRICS, CONFIG):
                (self.out / name).unlink(missing_ok=True)
        elif has_run and not resume:
            state = "a finished run" if (self.out / REPORT).exists() else "an unfinished run"
            raise SpikerollError(f"{self.out} already holds {state}; pass --resume to continue it, "
                                 "--overwrite to replace it, or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)

    def _restore(self, state: dict) -> None:
        saved = state["config"]
        mismatched = [k for k in ARCHITECTURE_KEYS if saved.get(k) != getattr(self.cfg, k)]
        if mismatched:
            pairs = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(self.cfg, k)!r}" for k in mismatched)
            raise SpikerollError(f"checkpoint in {self.out} comes from an incompatible config ({pairs}); "
                                 "resume with the original settings or use --overwrite")
        self.net.load_parameters(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generation, self.elapsed = state["generation"], state["elapsed"]
        self._truncate_metrics(self.generation)

    def _initialise_from(self, run_dir: Path) -> None:
        """Copy the parameters of another run's network (fine-tuning, e.g. simulated -> real)."""
        _, source = load_trained(run_dir)
        if source.sizes != self.net.sizes:
            raise SpikerollError(f"--init-from {run_dir} has layer sizes {source.sizes}, this run {self.net.sizes}; "
                                 "use the same --hidden and input size")
        self.net.load_parameters(source.params.values())

    def _truncate_metrics(self, generation: int) -> None:
        """Drop metric lines written after the checkpoint, so a resumed run's log has no duplicates."""
        path = self.out / METRICS
        if path.exists():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["generation"] < generation]
            path.write_text("".join(line + "\n" for line in keep))

    def checkpoint(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, {
            "format": 1, "config": self.cfg.to_dict(), "generation": self.generation, "elapsed": self.elapsed,
            "params": [p.detach().cpu() for p in self.net.params.values()],
            "param_names": list(self.net.params), "sizes": self.net.sizes,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
        })

    # one generation ----------------------------------------------------------------------------
    def minibatch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation g's (augmented) training minibatch: a pure function of (seed, g)."""
        cfg, g, train = self.cfg, self.generation, self.data.train
        idx = batch_indices(cfg.seed, g, len(train.labels), cfg.batch_size)
        frames = augment_frames(train.frames[idx], cfg.seed, g, cfg.augment_shift, cfg.augment_drop)
        # frames keep their storage dtype (uint8): the network converts them once it has laid
        # them out, a quarter of the bytes to move
        return frames.to(self.device), train.labels[idx].to(self.device)

    def step(self) -> dict:
        if self.cfg.strategy == "bptt":  # surrogate-gradient baseline, see spikeroll.bptt
            from spikeroll.bptt import bptt_step

            return bptt_step(self)
        cfg, g = self.cfg, self.generation
        frames, labels = self.minibatch()
        sigma = sigma_at(cfg, g)
        chunk = auto_chunk_pairs(cfg, self.net, len(labels))
        with torch.no_grad():
            logits = self.net.population_logits(
                frames, lambda pairs: self.strategy.ask(g, pairs, sigma), self.strategy.pairs, chunk)
            fitness, acc = member_fitness(logits, labels, cfg.temperature)
            fitness, acc = fitness.cpu(), acc.cpu()
            grads = self.strategy.gradient(g, shape_fitness(fitness, cfg.shaping), sigma, chunk)
        for p, grad in zip(self.net.params.values(), grads):
            p.grad = -grad  # optimisers minimise; ES estimates the ascent direction
        self.optimizer.step()
        self.scheduler.step()
        finite = fitness[torch.isfinite(fitness)]
        return {"fitness_mean": float(finite.mean()) if len(finite) else None,
                "fitness_max": float(finite.max()) if len(finite) else None,
                "train_batch_accuracy": float(acc.mean()), "sigma": sigma}

    # the loop ----------------------------------------------------------------------------------
    def evaluate(self, with_train: bool = False) -> dict:
        result = {"val_accuracy": accuracy(self.net, self.data.val),
                  "test_accuracy": accuracy(self.net, self.data.test)}
        if with_train:
            result["train_accuracy"] = accuracy(self.net, self.data.train)
        return result

    def run(self, progress: bool = True, max_seconds: float | None = None) -> dict:
        """Train up to cfg.generations; with max_seconds, stop once that many seconds of training
        (summed step times, as in report.json's wall_seconds) are spent, then evaluate, checkpoint
        and report the generations actually run."""
        cfg = self.cfg
        bar = tqdm(total=cfg.generations if max_seconds is None else None, initial=self.generation, disable=not progress,
                   desc="generation", unit="gen", dynamic_ncols=True)
        def finished() -> bool:
            return self.generation >= cfg.generations or (max_seconds is not None and self.elapsed >= max_seconds)

        with open(self.out / METRICS, "a") as log:
            while not finished():
                lr = self.optimizer.param_groups[0]["lr"]
                start = time.perf_counter()
                record = {"generation": self.generation, **self.step(), "lr": lr}
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                self.generation += 1
                record["seconds"] = seconds
                done = finished()
                if self.generation % cfg.eval_every == 0 or done:
                    record.update(self.evaluate())
                log.write(json.dumps(record) + "\n")
                log.flush()
                if self.generation % cfg.checkpoint_every == 0 or done:
                    self.checkpoint()
                bar.update(1)
                bar.set_postfix(fit=f"{record['fitness_mean']:.3f}" if record["fitness_mean"] is not None else "nan",
                                acc=f"{record['train_batch_accuracy']:.3f}",
                                val=f"{record['val_accuracy']:.3f}" if record.get("val_accuracy") is not None else "-",
                                s_gen=f"{seconds:.2f}")
        bar.close()
        return self.finish()

    def finish(self) -> dict:
        report = {
            **self.evaluate(with_train=True),
            "generations": self.generation,
            "wall_seconds": round(self.elapsed, 3),
            "seconds_per_generation": round(self.elapsed / max(self.generation, 1), 4),
            "strategy": self.cfg.strategy,
            "rank": self.cfg.rank if self.cfg.strategy == "eggroll" else None,
            "population": self.cfg.population if self.cfg.strategy != "bptt" else None,
            "num_parameters": self.net.num_parameters,
            "dataset": self.cfg.dataset,
            "torch_threads": torch.get_num_threads(),
            "device": str(self.device),
        }
        save_json(self.out / REPORT, report)
        return report


def load_trained(run_dir: str | Path) -> tuple[TrainConfig, SpikingNet]:
    """The config and mean network saved in a run directory's checkpoint."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise SpikerollError(f"{run_dir} holds no {CHECKPOINT}; pass the --out directory of a training run")
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    sizes = state["sizes"]
    net = make_network(cfg, sizes[0], sizes[-1], resolve_device(cfg.device))
    net.load_parameters(state["params"])
    return cfg, net
