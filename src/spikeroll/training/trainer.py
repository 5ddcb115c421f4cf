"""The training loop: minibatch -> estimator (a gradient) -> torch.optim step, with periodic
evaluation of the mean network, callbacks, atomic checkpoints, metrics.jsonl and resume.

The Trainer does not know which strategy it runs: `spikeroll.training.estimator.build_estimator` chooses
the estimator (EGGROLL, OpenAI-ES or BPTT) and where the population is evaluated."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from spikeroll.atomic import save_json
from spikeroll.config import ARCHITECTURE_KEYS, TrainConfig
from spikeroll.data.minibatch import minibatch
from spikeroll.errors import SpikerollError
from spikeroll.es.protocols import Network
from spikeroll.es.schedules import schedule_factor
from spikeroll.nets.model import input_features
from spikeroll.training.callbacks import Callback
from spikeroll.training.estimator import build_estimator
from spikeroll.training.evaluation import accuracy
from spikeroll.training.factories import make_network, make_optimizer, resolve_device
from spikeroll.training.rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    REPORT,
    load_checkpoint,
    load_trained,
    save_checkpoint,
)


class Trainer:
    """Owns a run directory: config.json, metrics.jsonl, checkpoint.pt and report.json."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data, *, resume=False, overwrite=False,
                 callbacks: list[Callback] | tuple = (), init_net: Network | None = None):
        self.cfg = cfg.validate()
        self.out = Path(out_dir)
        self.data = data
        self.callbacks = list(callbacks)
        self._prepare_run_dir(resume, overwrite)
        self.device = resolve_device(cfg.device)
        in_features = input_features(tuple(data.train.frames.shape[2:]), cfg.pool)  # one time bin
        self.net = make_network(cfg, in_features, int(data.classes), self.device)
        self.estimator = build_estimator(cfg, self.net, data)
        self.optimizer = make_optimizer(cfg, list(self.net.params.values()))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda g: schedule_factor(cfg.lr_schedule, g, cfg.generations))
        self.generation, self.elapsed = 0, 0.0
        if resume and (self.out / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.out / CHECKPOINT))
        elif init_net is not None or cfg.init_from:
            if init_net is None and str(cfg.init_from).endswith(".nir"):
                raise SpikerollError("a NIR --init-from is read by spikeroll.api.train_run; call it, or pass the "
                                     "imported network as Trainer(..., init_net=...)")
            source = init_net if init_net is not None else load_trained(cfg.init_from)[1]
            self._initialise_from(source, cfg.init_from or "network")
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
        defaults, now = TrainConfig().to_dict(), self.cfg.to_dict()  # a key an older checkpoint lacks had its default
        mismatched = [k for k in ARCHITECTURE_KEYS if saved.get(k, defaults[k]) != now[k]]
        if mismatched:
            pairs = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in mismatched)
            raise SpikerollError(f"checkpoint in {self.out} comes from an incompatible config ({pairs}); "
                                 "resume with the original settings or use --overwrite")
        self.net.load_parameters(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generation, self.elapsed = state["generation"], state["elapsed"]
        self._truncate_metrics(self.generation)

    def _initialise_from(self, source: Network, origin: str) -> None:
        """Copy the parameters of another network (fine-tuning, e.g. simulated -> real): another run's,
        or a NIR graph's that `api.train_run` read (it also set cfg to the graph's network)."""
        if source.sizes != self.net.sizes:
            raise SpikerollError(f"--init-from {origin} has layer sizes {source.sizes}, this run {self.net.sizes}; "
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
        frames, labels = minibatch(self.data.train, self.cfg, self.generation)
        return frames.to(self.device), labels.to(self.device)

    def step(self) -> dict:
        """One generation: the estimator's gradient on this generation's minibatch, one optimiser
        and scheduler step; advances `generation` and returns the generation's metrics."""
        frames, labels = self.minibatch()
        metrics = self.estimator.estimate(self.generation, frames, labels)
        self.optimizer.step()
        self.scheduler.step()
        self.generation += 1
        return metrics

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
        try:
            return self._run(progress, max_seconds)
        finally:  # an estimator holding workers (spikeroll.training.distributed) lets them go, even on an error
            close = getattr(self.estimator, "close", None)
            if close is not None:
                close()

    def _run(self, progress: bool, max_seconds: float | None) -> dict:
        cfg = self.cfg
        bar = tqdm(total=cfg.generations if max_seconds is None else None, initial=self.generation,
                   disable=not progress, desc="generation", unit="gen", dynamic_ncols=True)
        def finished() -> bool:
            return self.generation >= cfg.generations or (max_seconds is not None and self.elapsed >= max_seconds)

        for callback in self.callbacks:
            callback.on_run_start(self)
        with open(self.out / METRICS, "a") as log:
            while not finished():
                lr = self.optimizer.param_groups[0]["lr"]
                generation, start = self.generation, time.perf_counter()
                record = {"generation": generation, **self.step(), "lr": lr}
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                record["seconds"] = seconds
                for callback in self.callbacks:
                    callback.on_step_end(self, record)
                done = finished()
                if self.generation % cfg.eval_every == 0 or done:
                    record.update(self.evaluate())
                log.write(json.dumps(record) + "\n")
                log.flush()
                if self.generation % cfg.checkpoint_every == 0 or done:
                    self.checkpoint()
                for callback in self.callbacks:
                    callback.on_generation_end(self, record)
                bar.update(1)
                bar.set_postfix(fit=f"{record['fitness_mean']:.3f}" if record["fitness_mean"] is not None else "nan",
                                acc=f"{record['train_batch_accuracy']:.3f}",
                                val=f"{record['val_accuracy']:.3f}" if record.get("val_accuracy") is not None else "-",
                                s_gen=f"{seconds:.2f}")
        bar.close()
        report = self.finish()
        for callback in self.callbacks:
            callback.on_run_end(self, report)
        return report

    def finish(self) -> dict:
        report = {
            **self.evaluate(with_train=True),
            "generations": self.generation,
            "wall_seconds": round(self.elapsed, 3),
            "seconds_per_generation": round(self.elapsed / max(self.generation, 1), 4),
            **self.estimator.describe(),
            "num_parameters": self.net.num_parameters,
            "dataset": self.cfg.dataset,
            "torch_threads": torch.get_num_threads(),
            "device": str(self.device),
        }
        save_json(self.out / REPORT, report)
        return report
