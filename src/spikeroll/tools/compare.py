"""`spikeroll compare`: EGGROLL at several ranks, full-rank OpenAI-ES and the BPTT baseline on the
same network, data and budget, each as an ordinary run directory trained in its own fresh process
(spikeroll.tools.isolate), one after another, summarised in compare.md and compare.png.
BPTT takes its own learning rate (`bptt_lr`, default 2e-3): the ES default lr is not meant for it.

How each column is measured (peak RSS of the steps and of the whole run, s/gen, train s, wall s)
and how a time budget interacts with the lr schedule: docs/results/compare.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import traceback
from pathlib import Path

import torch

from spikeroll.atomic import save_json
from spikeroll.config import TrainConfig, check_rank
from spikeroll.data import SENSOR_SIZE, Split, Splits
from spikeroll.errors import SpikerollError
from spikeroll.memory import max_rss_bytes, reset_peak_rss, status_bytes
from spikeroll.tools.isolate import run_isolated
from spikeroll.tools.plot import accuracy_vs_time, learning_curves
from spikeroll.training.callbacks import Callback
from spikeroll.training.factories import load_data
from spikeroll.training.trainer import Trainer

STRATEGY_ORDER = ("eggroll", "openes", "bptt")
DEFAULT_RANKS = (1, 4, 8)
DEFAULT_BUDGET_SECONDS = 60.0
UNBOUNDED_GENERATIONS = 10**9  # a time budget alone: the budget ends the run
BPTT_LR = 2e-3
SPEC = "compare_spec.json"
RESOURCES = "resources.json"
DATA_FILE = ".compare-data.pt"
# Every dataset's frames are (N, T, 2, 34, 34): the first layer has 2·34·34 inputs, the readout 10
# classes (the networks are planned before the runs load their data; given data declares its own)
SENSOR_FEATURES, CLASSES = math.prod(SENSOR_SIZE), 10


def parse_ranks(text: str) -> list[int]:
    """`--ranks` ("1,4,8") as a sorted list of distinct ranks, each checked to be >= 1."""
    try:
        ranks = [int(part) for part in str(text).replace(" ", "").split(",") if part]
    except ValueError:
        raise SpikerollError(f"--ranks {text!r} is not a comma-separated list of integers; try --ranks 1,4,8") from None
    if not ranks:
        raise SpikerollError("--ranks is empty; give at least one rank, e.g. --ranks 1,4,8")
    for rank in ranks:
        check_rank(rank, option="--ranks")
    return sorted(set(ranks))


def parse_strategies(text: str) -> list[str]:
    """`--strategies` ("eggroll,bptt") as known strategy names, in STRATEGY_ORDER."""
    names = [part for part in str(text).replace(" ", "").split(",") if part]
    if not names:
        raise SpikerollError(f"--strategies is empty; give some of {','.join(STRATEGY_ORDER)}")
    unknown = [n for n in names if n not in STRATEGY_ORDER]
    if unknown:
        raise SpikerollError(f"unknown strategy {unknown[0]!r} in --strategies; choose from {','.join(STRATEGY_ORDER)}")
    return [s for s in STRATEGY_ORDER if s in names]


def plan_runs(base: TrainConfig, ranks, strategies=STRATEGY_ORDER, *, generations: int | None = None,
              budget_seconds: float | None = None, bptt_lr: float = BPTT_LR,
              sizes: tuple[int, int] = (SENSOR_FEATURES, CLASSES)) -> list[tuple[str, TrainConfig]]:
    """(run name, config) per run; every config is validated before anything runs."""
    if generations is not None and generations < 1:
        raise SpikerollError(f"--generations {generations} must be >= 1")
    if budget_seconds is not None and not budget_seconds > 0:
        raise SpikerollError(f"--budget-seconds {budget_seconds} must be > 0")
    if generations is None and budget_seconds is None:
        budget_seconds = DEFAULT_BUDGET_SECONDS
    common = {}
    if generations is not None:
        common["generations"] = generations
    else:
        common.update(generations=UNBOUNDED_GENERATIONS, lr_schedule="constant")
    widths = [sizes[0], *base.hidden, sizes[1]]
    matrix_shapes = list(zip(widths[1:], widths[:-1]))  # (out, in) of each weight matrix
    runs = []
    for strategy in strategies:
        if strategy == "eggroll":
            for rank in ranks:
                check_rank(rank, matrix_shapes, option="--ranks")
                runs.append((f"eggroll-r{rank}", dataclasses.replace(base, strategy="eggroll", rank=rank, **common)))
        elif strategy == "openes":
            runs.append(("openes", dataclasses.replace(base, strategy="openes", **common)))
        else:
            runs.append(("bptt", dataclasses.replace(base, strategy="bptt", lr=bptt_lr, **common)))
    for _, cfg in runs:
        cfg.validate()
    return runs


def _max_rss_mib() -> float:
    return max_rss_bytes() / 2**20


def _current_rss_mib() -> float | None:
    rss = status_bytes("VmRSS")
    return None if rss is None else rss / 2**20


def _peak_rss_since_reset_mib() -> float | None:
    peak = status_bytes("VmHWM")
    return None if peak is None else peak / 2**20


class _StepMemory(Callback):
    """Peak RSS of the generation steps, with no work inside the timed steps.

    On run start it hands freed memory back to the OS and resets the high-water mark; the mark is
    read after each step until the first evaluation has run, so `steps` is the peak over the steps
    run before it (eval_every steps, or all of them; every step has the same shapes), including the
    one-off allocations of the first step (optimizer state, ...). None where unsupported.
    Resetting the mark also resets what ru_maxrss reports, so `whole_run()` combines the peak
    read before the reset with the mark at the end.
    """

    def __init__(self):
        self.steps, self.before, self.supported, self.evaluated = None, _max_rss_mib(), False, False

    def on_run_start(self, trainer) -> None:
        self.before = max(self.before, _max_rss_mib())
        self.supported = reset_peak_rss() and _peak_rss_since_reset_mib() is not None

    def on_step_end(self, trainer, record) -> None:
        if self.supported and not self.evaluated:
            self.steps = _peak_rss_since_reset_mib()

    def on_generation_end(self, trainer, record) -> None:
        self.evaluated = self.evaluated or "val_accuracy" in record

    def whole_run(self) -> float:
        return max(self.before, _max_rss_mib(), (_peak_rss_since_reset_mib() or 0.0) if self.supported else 0.0)


def write_data(data, path: str | Path) -> None:
    """Save given splits (.train/.val/.test with .frames and .labels, .classes, .sensor_size) as
    tensors and plain values only, which `read_data` loads without unpickling any object."""
    splits = {name: None if split is None else {"frames": torch.as_tensor(split.frames),
                                                "labels": torch.as_tensor(split.labels)}
              for name, split in (("train", data.train), ("val", data.val), ("test", data.test))}
    torch.save({"splits": splits, "classes": int(data.classes), "sensor_size": list(data.sensor_size),
                "name": data.name if isinstance(data, Splits) else "given"}, path)


def read_data(path: str | Path) -> Splits:
    """The splits `write_data` saved (torch.load with weights_only=True: nothing in it runs code)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    splits = {name: None if split is None else Split(split["frames"], split["labels"])
              for name, split in saved["splits"].items()}
    return Splits(saved["name"], splits["train"], splits["val"], splits["test"], classes=saved["classes"],
                  sensor_size=tuple(saved["sensor_size"]))


def run_worker(spec_path: str | Path) -> dict:
    """Body of the per-run process: train one run, write RUN/resources.json and return its content
    (an "error" key when the run failed)."""
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    cfg = TrainConfig.from_dict(spec["config"])
    resources = {"pid": os.getpid()}
    try:
        if spec.get("data"):
            data = read_data(spec["data"])
        else:
            data = load_data(cfg, progress=False)
        resources["rss_before_training_mib"] = _current_rss_mib()
        start = time.perf_counter()
        step_memory = _StepMemory()
        trainer = Trainer(cfg, out, data, resume=spec.get("resume", False), overwrite=spec.get("overwrite", False),
                          callbacks=[step_memory])
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        report = trainer.run(progress=spec.get("progress", False), max_seconds=spec.get("max_seconds"))
        resources["wall_seconds"] = time.perf_counter() - start
        resources["peak_rss_mib"] = step_memory.whole_run()
        resources["peak_rss_steps_mib"] = step_memory.steps
        if trainer.device.type == "cuda":
            resources["peak_gpu_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        resources["report"] = report
    except SpikerollError as exc:
        resources["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded for the table, and shown in full on stderr
        traceback.print_exc()
        resources["error"] = f"{type(exc).__name__}: {exc}"
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / RESOURCES, resources)
    return resources


def _fmt(value, digits=3, suffix=""):
    if value is None:
        return "—"
    return f"{value:.{digits}f}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


def results_table(rows: list[dict]) -> str:
    """Markdown table, one row per run."""
    gpu = any(r.get("peak_gpu_mib") is not None for r in rows)
    head = ["strategy", "rank", "generations", "test acc", "val acc", "s/gen (bptt: s/step)", "train s", "wall s",
            "peak RSS MiB: steps", "peak RSS MiB: run"] + (["peak GPU MiB"] if gpu else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        rank = r["rank"] if r["strategy"] == "eggroll" else ("full" if r["strategy"] == "openes" else "—")
        if r.get("error"):
            error = " ".join(str(r["error"]).split()).replace("|", "\\|")
            cells = [r["strategy"], str(rank), f"failed: {error}"] + [""] * (len(head) - 3)
        else:
            cells = [r["strategy"], str(rank), str(r["generations"]), _fmt(r["test_accuracy"]),
                     _fmt(r["val_accuracy"]), _fmt(r["seconds_per_generation"], 4), _fmt(r["train_seconds"], 1),
                     _fmt(r["wall_seconds"], 1), _fmt(r["peak_rss_steps_mib"], 0), _fmt(r["peak_rss_mib"], 0)]
            if gpu:
                cells.append(_fmt(r.get("peak_gpu_mib"), 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_runs(base: TrainConfig, out_dir: str | Path = "runs/compare", *, ranks=DEFAULT_RANKS,
                 strategies=STRATEGY_ORDER, generations: int | None = None, budget_seconds: float | None = None,
                 bptt_lr: float = BPTT_LR, data=None, overwrite: bool = False, progress: bool = True,
                 echo=print, isolate: bool = True) -> list[dict]:
    """Run every strategy (EGGROLL at each rank, OpenAI-ES, BPTT) under OUT and write OUT/compare.md
    and OUT/compare.png (plus OUT/curves.png). `data` (Splits-like: .train/.val/.test) replaces
    loading base.dataset; it is handed to the run processes through a temporary file in OUT.
    Returns one dict per run (the table's rows). isolate=False trains the runs in this process
    instead (quicker, for tests and debugging; the memory columns are then not per run)."""
    base = base.validate()
    out = Path(out_dir)
    sizes = (SENSOR_FEATURES, CLASSES)
    if data is not None:
        sizes = (data.train.frames[0, 0].numel(), int(data.classes))
    runs = plan_runs(base, ranks, strategies, generations=generations, budget_seconds=budget_seconds,
                     bptt_lr=bptt_lr, sizes=sizes)
    if generations is None and budget_seconds is None:
        budget_seconds = DEFAULT_BUDGET_SECONDS
    taken = [name for name, _ in runs
             if (out / name / "checkpoint.pt").exists() or (out / name / "report.json").exists()]
    if taken and not overwrite:
        raise SpikerollError(f"{out} already holds run(s) {', '.join(taken)}; pass --overwrite to replace them "
                             "or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    data_path = None
    if data is not None:
        data_path = out / DATA_FILE
        write_data(data, data_path)
    rows = []
    try:
        for i, (name, cfg) in enumerate(runs, 1):
            run_dir = out / name
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / RESOURCES).unlink(missing_ok=True)
            spec = {"config": cfg.to_dict(), "out": str(run_dir), "data": str(data_path) if data_path else None,
                    "max_seconds": budget_seconds, "overwrite": overwrite, "progress": progress}
            (run_dir / SPEC).write_text(json.dumps(spec, indent=2) + "\n")
            limit = f"{budget_seconds:g} s" if budget_seconds is not None else f"{cfg.generations} generations"
            echo(f"[{i}/{len(runs)}] {name}: {limit} -> {run_dir}")
            if isolate:
                outcome = run_isolated(run_worker, run_dir / SPEC)
                resources = outcome.value if outcome.ok else {
                    "error": f"the run's process ended without a result ({outcome.failure}; see its output above)"}
            else:
                resources = run_worker(run_dir / SPEC)
            rows.append(_row(name, cfg, resources))
    finally:
        if data_path is not None:
            data_path.unlink(missing_ok=True)
    table = results_table(rows)
    done = [out / name for name, _ in runs if (out / name / "metrics.jsonl").exists()]
    note = "" if isolate else ("\n**All runs were trained in one process (isolate=False): the memory columns are "
                               "that process's, not each run's.**\n")
    (out / "compare.md").write_text(_markdown(base, table, budget_seconds, generations, bptt_lr) + note)
    if done:
        accuracy_vs_time(done, out / "compare.png")
        learning_curves(done, out / "curves.png")
    failed = [r for r in rows if r.get("error")]
    echo(table)
    if failed:
        raise SpikerollError(f"{len(failed)} of {len(rows)} runs failed ({failed[0]['name']}: {failed[0]['error']}); "
                             f"see {out / 'compare.md'}")
    return rows


def _row(name: str, cfg: TrainConfig, res: dict) -> dict:
    row = {"name": name, "strategy": cfg.strategy, "rank": cfg.rank if cfg.strategy == "eggroll" else None}
    if res.get("error"):
        return {**row, "error": res["error"]}
    report = res["report"]
    return {**row, "generations": report["generations"], "test_accuracy": report.get("test_accuracy"),
            "val_accuracy": report.get("val_accuracy"), "train_accuracy": report.get("train_accuracy"),
            "seconds_per_generation": report["seconds_per_generation"], "train_seconds": report["wall_seconds"],
            "wall_seconds": res["wall_seconds"], "peak_rss_mib": res["peak_rss_mib"],
            "peak_rss_steps_mib": res.get("peak_rss_steps_mib"),
            "rss_before_training_mib": res.get("rss_before_training_mib"), "peak_gpu_mib": res.get("peak_gpu_mib")}


def _markdown(base: TrainConfig, table: str, budget_seconds, generations, bptt_lr) -> str:
    if budget_seconds is not None and generations is not None:
        budget = f"{budget_seconds:g} training seconds per run, at most {generations} generations"
    elif budget_seconds is not None:
        budget = f"{budget_seconds:g} training seconds per run (constant lr)"
    else:
        budget = f"{generations} generations per run"
    sigma_end = "" if base.sigma_final is None else f" → {base.sigma_final} along the lr schedule"
    return (
        "# spikeroll compare\n\n"
        f"Dataset `{base.dataset}`, {base.time_bins} time bins, pool {base.pool}; network hidden {base.hidden}, "
        f"β={base.beta}, θ={base.threshold}, reset {base.reset}, readout {base.readout}; batch {base.batch_size}, "
        f"weight decay {base.weight_decay}, augment shift {base.augment_shift}, seed {base.seed}, "
        f"device {base.device}. "
        f"ES: population {base.population}, σ={base.sigma}{sigma_end}, lr={base.lr} ({base.lr_schedule}), "
        f"{base.optimizer}. BPTT: fast-sigmoid surrogate, lr={bptt_lr}, {base.optimizer}. Budget: {budget}.\n\n"
        + table +
        "\nEach run is a run directory next to this file, trained in its own fresh process one after another. "
        "s/gen and train s count generation steps only (evaluation excluded); wall s is the run's whole "
        "time in its process (training, evaluations, checkpoints; not interpreter start or data loading). "
        "Peak RSS, run: the process's `getrusage(RUSAGE_SELF).ru_maxrss` after the run, so it includes "
        "evaluations (batches of 1000 samples), which can dominate for small networks. Peak RSS, steps: the "
        "highest resident memory while generation steps ran, up to the first evaluation (Linux: the VmHWM "
        "high-water mark, reset through /proc/self/clear_refs after malloc_trim just before training; — "
        "where unsupported). Both include Python, "
        "torch and the dataset in memory, which all runs pay alike (each run's resources.json also holds its "
        "RSS right before training). Test and validation accuracy are those of the final network.\n"
    )

