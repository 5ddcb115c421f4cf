"""The training loop: minibatch -> estimator (a gradient) -> torch.optim step, with periodic
evaluation of the mean network, callbacks, atomic checkpoints, metrics.jsonl and resume.

The Trainer does not know which strategy it runs: `spikeroll.training.estimator.build_estimator` chooses
the estimator (EGGROLL, OpenAI-ES or BPTT) and where the population is evaluated.

No run is lost: the Trainer builds and checks the whole new run (network, estimator, optimiser, a
checkpoint to resume or a run to start from) before it touches the run directory, then writes it by
the rules of `spikeroll.training.runfiles` (an overwritten run kept until the first checkpoint, fsynced
metrics, one-line disk errors naming the intact checkpoint)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from spikeroll.config import ARCHITECTURE_KEYS, TrainConfig
from spikeroll.data.minibatch import minibatch
from spikeroll.errors import SpikerollError
from spikeroll.es.protocols import Network
from spikeroll.es.schedules import schedule_factor
from spikeroll.nets.model import input_features
from spikeroll.training.callbacks import Callback
from spikeroll.training.estimator import build_estimator
from spikeroll.training.evaluation import accuracy, accuracy_and_counts, early_exit
from spikeroll.training.factories import make_network, make_optimizer, resolve_device
from spikeroll.training.rundir import (
    CHECKPOINT,
    check_params,
    check_training_state,
    load_checkpoint,
    load_trained,
)
from spikeroll.training.runfiles import RunFiles


class Trainer:
    """Owns a run directory: config.json, metrics.jsonl, checkpoint.pt and report.json."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data, *, resume=False, overwrite=False,
                 callbacks: list[Callback] | tuple = (), init_net: Network | None = None, fitness=None):
        self.cfg = cfg.validate()
        self.out = Path(out_dir)
        self.data = data
        self.callbacks = list(callbacks)
        self.files = RunFiles(self.out)
        self.files.refuse_existing(resume, overwrite)
        self.device = resolve_device(cfg.device)
        in_features = input_features(tuple(data.train.frames.shape[2:]), cfg.pool)  # one time bin
        self.net = make_network(cfg, in_features, int(data.classes), self.device)
        self.estimator = build_estimator(cfg, self.net, data, fitness)
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
            source = init_net if init_net is not None else load_trained(cfg.init_from, model=cfg.model)[1]
            self._initialise_from(source, cfg.init_from or "network")
        kept = self.files.kept_metrics(self.generation) if resume else None
        self.files.start(cfg.to_dict(), overwrite, kept)  # everything is checked: only now is the folder changed

    # run directory ---------------------------------------------------------------------------
    def _restore(self, state: dict) -> None:
        path = self.out / CHECKPOINT
        saved = state["config"]
        defaults, now = TrainConfig().to_dict(), self.cfg.to_dict()  # a key an older checkpoint lacks had its default
        mismatched = [k for k in ARCHITECTURE_KEYS if saved.get(k, defaults[k]) != now[k]]
        if mismatched:
            pairs = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in mismatched)
            raise SpikerollError(f"checkpoint in {self.out} comes from an incompatible config ({pairs}); "
                                 "resume with the original settings or use --overwrite")
        check_params(state, self.net, path)
        check_training_state(state, self.optimizer, self.scheduler, path)
        try:
            self.net.load_parameters(state["params"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
            raise SpikerollError(f"checkpoint {path}: its optimizer or scheduler state does not load "
                                 f"({type(exc).__name__}); resume with the original settings or use --overwrite") \
                from None
        self.generation, self.elapsed = state["generation"], state["elapsed"]
        self.files.saved_generation = self.generation

    def _initialise_from(self, source: Network, origin: str) -> None:
        """Copy the parameters of another network (fine-tuning, e.g. simulated -> real): another run's,
        or a NIR graph's that `api.train_run` read (it also set cfg to the graph's network)."""
        if source.sizes != self.net.sizes:
            raise SpikerollError(f"--init-from {origin} has layer sizes {source.sizes}, this run {self.net.sizes}; "
                                 "use the same --hidden and input size")
        self.net.load_parameters(source.params.values())

    def checkpoint(self) -> None:
        """Write checkpoint.pt atomically: config, generation, parameters, optimiser and scheduler."""
        self.files.checkpoint({
            "format": 1, "config": self.cfg.to_dict(), "generation": self.generation, "elapsed": self.elapsed,
            "params": [p.detach().cpu() for p in self.net.params.values()],
            "param_names": list(self.net.params), "sizes": self.net.sizes,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
        }, self.generation)

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
        """Accuracy of the mean network on the validation and test splits (and the training split),
        with its SynOps per inference and firing rates on validation and test (val_synops,
        val_synops_hidden, val_rate_layer{i}, test_...: spikeroll.nets.counts); for --objective early
        also its early decisions (val_early_accuracy, _bins, _synops: evaluation.early_exit)."""
        result = {**accuracy_and_counts(self.net, self.data.val, "val_"),
                  **accuracy_and_counts(self.net, self.data.test, "test_")}
        if self.cfg.objective == "early":  # what it was trained for: deciding at its confidence
            for name, split in (("val", self.data.val), ("test", self.data.test)):
                if split is not None:
                    result.update(early_exit(self.net, split, self.cfg.early_confidence, f"{name}_"))
        if with_train:
            result["train_accuracy"] = accuracy(self.net, self.data.train)
        return result

    def run(self, progress: bool = True, max_seconds: float | None = None) -> dict:
        """Train up to cfg.generations; with max_seconds, stop once that many seconds of training
        (summed step times, as in report.json's wall_seconds) are spent, then evaluate, checkpoint
        and report the generations actually run."""
        try:
            return self._run(progress, max_seconds)
        except BaseException:
            self.files.put_back()  # an overwritten run returns if this one wrote no checkpoint
            raise
        finally:  # an estimator holding workers (spikeroll.training.distributed) lets them go, even on an error
            self.estimator.close()

    def _run(self, progress: bool, max_seconds: float | None) -> dict:
        cfg = self.cfg
        bar = tqdm(total=cfg.generations if max_seconds is None else None, initial=self.generation,
                   disable=not progress, desc="generation", unit="gen", dynamic_ncols=True)
        def finished() -> bool:
            return self.generation >= cfg.generations or (max_seconds is not None and self.elapsed >= max_seconds)

        for callback in self.callbacks:
            callback.on_run_start(self)
        with self.files.metrics_log() as log:
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
                self.files.log(log, record)
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
        """Evaluate the final network and write report.json; returns the report."""
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
        self.files.report(report)
        return report
