"""Figures of finished (or running) run directories, written as PNG files.

learning_curves(run_dirs, path): fitness and accuracy (train batch, validation, test) against
    generations and against cumulative training seconds, several runs overlaid.
spike_raster(run_dir, path): the trained network on one validation sample: the input events
    (ON/OFF), every hidden LIF layer's spikes and the readout.
plot_runs(run_dirs, out_dir): both, for `spikeroll plot`.

matplotlib is optional (`pip install 'spikeroll[plot]'`) and imported only here, lazily; figures
are drawn with matplotlib's object API (no pyplot), so no global backend is changed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from spikeroll.errors import SpikerollError
from spikeroll.training.factories import load_data
from spikeroll.training.rundir import load_trained

DPI = 120


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401 - optional dependency: the extra `plot`
    except ImportError:
        raise SpikerollError("plotting needs matplotlib, which is not installed; "
                             "install it with: pip install 'spikeroll[plot]'") from None


def _figure(**kw):
    _require_matplotlib()
    from matplotlib.figure import Figure  # optional dependency: the extra `plot`

    return Figure(**kw)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl (one per generation)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise SpikerollError(f"{run_dir} holds no metrics.jsonl; pass the --out directory of a training run")
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError):  # a line cut short by a killed run, or nested past the stack
                continue
    return records


def run_labels(run_dirs) -> list[str]:
    """Legend names: each run directory's name, with its parent's where names repeat."""
    paths = [Path(d).resolve() for d in run_dirs]
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def _series(records: list[dict], key: str):
    """(generations, cumulative seconds, values) of the records where `key` has a value.

    x is the generation count after the step (1-based), matching when the evaluation was made;
    seconds are the summed step times (training only, evaluation excluded), as in report.json.
    """
    gens, secs, values, total = [], [], [], 0.0
    for r in records:
        total += r.get("seconds") or 0.0
        if r.get(key) is not None:
            gens.append(r["generation"] + 1)
            secs.append(total)
            values.append(r[key])
    return gens, secs, values


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def learning_curves(run_dirs, path: str | Path, title: str | None = None) -> Path:
    """Fitness and accuracies against generations (top) and cumulative seconds (bottom)."""
    _require_matplotlib()
    from matplotlib.lines import Line2D  # optional dependency: the extra `plot`

    run_dirs = list(run_dirs)
    labels = run_labels(run_dirs)
    fig = _figure(figsize=(13, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    colors = [f"C{i % 10}" for i in range(len(run_dirs))]
    for run_dir, _label, color in zip(run_dirs, labels, colors):
        records = read_metrics(run_dir)
        for row, xi in ((0, 0), (1, 1)):
            ax_fit, ax_acc = axes[row]
            g, s, fit = _series(records, "fitness_mean")
            ax_fit.plot((g, s)[xi], fit, color=color, lw=1.5)
            g, s, fmax = _series(records, "fitness_max")
            if fmax != fit:
                ax_fit.plot((g, s)[xi], fmax, color=color, lw=0.8, ls=":", alpha=0.8)
            g, s, batch = _series(records, "train_batch_accuracy")
            ax_acc.plot((g, s)[xi], batch, color=color, lw=0.6, alpha=0.25)
            window = max(1, len(batch) // 30)
            ax_acc.plot((g, s)[xi], _smooth(batch, window), color=color, lw=1.0, alpha=0.6)
            for key, style in (("val_accuracy", "-"), ("test_accuracy", "--")):
                g, s, acc = _series(records, key)
                if acc:
                    ax_acc.plot((g, s)[xi], acc, color=color, ls=style, lw=2, marker="o", ms=3.5)
    for row, xlabel in ((0, "generation (optimizer step)"), (1, "training seconds (cumulative, evaluation excluded)")):
        ax_fit, ax_acc = axes[row]
        ax_fit.set_xlabel(xlabel)
        ax_fit.set_ylabel("fitness = −cross-entropy on the batch")
        ax_acc.set_xlabel(xlabel)
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(-0.02, 1.02)
        for ax in (ax_fit, ax_acc):
            ax.grid(alpha=0.3)
    axes[0][0].set_title("fitness: population mean (solid), best member (dotted)")
    axes[0][1].set_title("accuracy")
    runs = [Line2D([], [], color=c, lw=2, label=name) for c, name in zip(colors, labels)]
    styles = [Line2D([], [], color="k", lw=0.8, alpha=0.5, label="train batch (faint: raw, solid: smoothed)"),
              Line2D([], [], color="k", lw=2, marker="o", ms=3.5, label="validation"),
              Line2D([], [], color="k", lw=2, ls="--", marker="o", ms=3.5, label="test")]
    axes[0][1].legend(handles=runs, title="run", fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[1][1].legend(handles=styles, title="accuracy", fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      handlelength=3.5)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def accuracy_vs_time(run_dirs, path: str | Path, title: str | None = None) -> Path:
    """Validation accuracy (and the final test accuracy, ★) against cumulative training seconds."""
    _require_matplotlib()
    from matplotlib.lines import Line2D  # optional dependency: the extra `plot`

    run_dirs = list(run_dirs)
    fig = _figure(figsize=(10, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (run_dir, label) in enumerate(zip(run_dirs, run_labels(run_dirs))):
        color = f"C{i % 10}"
        records = read_metrics(run_dir)
        _, s, batch = _series(records, "train_batch_accuracy")
        ax.plot(s, _smooth(batch, max(1, len(batch) // 30)), color=color, lw=0.8, alpha=0.3)
        _, s, val = _series(records, "val_accuracy")
        ax.plot(s, val, color=color, lw=2, marker="o", ms=3.5, label=label)
        _, s, test = _series(records, "test_accuracy")
        if test:
            ax.plot(s[-1:], test[-1:], color=color, marker="*", ms=13, mec="k", mew=0.6, ls="none")
    ax.set_xlabel("training seconds (cumulative, evaluation excluded)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", lw=0.8, alpha=0.3, label="train batch (smoothed)"),
                Line2D([], [], color="k", marker="*", ms=11, ls="none", label="final test accuracy")]
    ax.legend(handles=handles, fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(title or "validation accuracy against training time")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _load_data_for(cfg):

    return load_data(cfg, progress=False)


def spike_raster(run_dir: str | Path, path: str | Path, data=None, sample: int = 0) -> Path:
    """The trained network of `run_dir` on validation sample `sample`: input, hidden spikes, readout."""
    _require_matplotlib()
    from matplotlib.ticker import MaxNLocator  # optional dependency: the extra `plot`

    cfg, net = load_trained(run_dir)
    data = data if data is not None else _load_data_for(cfg)
    split = data.val if data.val is not None and len(data.val.labels) else data.train
    if not 0 <= sample < len(split.labels):
        raise SpikerollError(f"--sample {sample} is out of range; the validation split has {len(split.labels)} samples")
    frames = split.frames[sample : sample + 1].to(net.device, torch.float32)
    label = int(split.labels[sample])
    with torch.no_grad():
        hidden = [s[:, 0].cpu() for s in net.spike_trains(frames)]  # (T, width) each
        logits = net.logits(frames)[0].cpu()
    x = frames[0].cpu()  # (T, *sensor)
    steps = x.shape[0]
    polar = x.dim() == 4 and x.shape[1] == 2  # (T, polarity, H, W)
    flat = x.reshape(steps, -1)  # channel index = polarity·H·W + pixel for (2, H, W) frames
    half = flat.shape[1] // 2 if polar else flat.shape[1]

    heights = [2.2] + [1.6] * len(hidden)
    fig = _figure(figsize=(11, 1.2 + sum(heights)), layout="constrained")
    grid = fig.add_gridspec(len(heights), 2, width_ratios=[1, 3], height_ratios=heights)
    extent = (-0.5, steps - 0.5)

    # input: summed over time as an image, and the active channels as a raster
    ax = fig.add_subplot(grid[0, 0])
    if x.dim() == 4:
        counts = x.sum(0)
        on = counts[1] if polar else counts.sum(0)
        off = counts[0] if polar else torch.zeros_like(on)
        scale = max(float(on.max()), float(off.max()), 1.0)
        rgb = torch.stack([1 - off / scale, 1 - (on + off).clamp(max=scale) / scale, 1 - on / scale], -1)
        ax.imshow(rgb.clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(f"input summed over {steps} bins\nred: ON, blue: OFF", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(grid[0, 1])
    active = torch.nonzero(flat.sum(0) > 0).flatten()
    if len(active):
        raster = torch.ones(len(active), steps, 3)
        fired = (flat[:, active] > 0).t()  # (channels, T)
        is_on = (active >= half) if polar else torch.ones(len(active), dtype=torch.bool)
        color = torch.where(is_on[:, None], torch.tensor([0.85, 0.1, 0.1]), torch.tensor([0.1, 0.2, 0.85]))
        raster[fired] = color[:, None, :].expand(-1, steps, -1)[fired]
        ax.imshow(raster.numpy(), aspect="auto", extent=(*extent, len(active) - 0.5, -0.5))
        if polar and 0 < int((~is_on).sum()) < len(active):
            ax.axhline(int((~is_on).sum()) - 0.5, color="0.5", lw=0.6)
    events = int((flat > 0).sum())
    ax.set_title(f"input: {len(active)} of {flat.shape[1]} channels active, {events} channel-bins with events "
                 f"({'OFF above, ON below' if polar else 'all channels'})", fontsize=9)
    ax.set_ylabel("active channel")
    ax.set_xlim(*extent)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for i, spikes in enumerate(hidden):
        ax = fig.add_subplot(grid[1 + i, 1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.imshow(spikes.t().numpy(), aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                  extent=(*extent, spikes.shape[1] - 0.5, -0.5))
        rate = float(spikes.mean())
        silent = int((spikes.sum(0) == 0).sum())
        ax.set_title(f"hidden layer {i + 1}: {spikes.shape[1]} LIF neurons, {100 * rate:.1f}% of neuron-bins spike, "
                     f"{silent} never spike", fontsize=9)
        ax.set_ylabel("neuron")
        ax.set_xlim(*extent)
        if i == len(hidden) - 1:
            ax.set_xlabel("time bin")
    if not hidden:
        fig.axes[-1].set_xlabel("time bin")

    ax = fig.add_subplot(grid[1:, 0] if hidden else grid[0, 0])
    classes = range(len(logits))
    ax.barh(list(classes), logits.tolist(), color=["C2" if c == label else "0.6" for c in classes])
    ax.set_yticks(list(classes))
    ax.invert_yaxis()
    kind = "time-averaged membrane" if net.readout == "membrane" else "spike count"
    pred = int(logits.argmax())
    ax.set_title(f"readout ({kind})\nlabel {label} (green), predicted {pred}", fontsize=9)
    ax.set_ylabel("class")

    fig.suptitle(f"{Path(run_dir).resolve().name}: {cfg.strategy}"
                 + (f" rank {cfg.rank}" if cfg.strategy == "eggroll" else "")
                 + f", validation sample {sample}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_runs(run_dirs, out_dir: str | Path | None = None, *, raster: bool = True, sample: int = 0,
              data=None, warn=None) -> list[Path]:
    """curves.png for all runs and <run>-raster.png for each; returns the written paths.

    out_dir defaults to RUN_DIR/plots for a single run and ./plots for several. `data` (Splits)
    replaces each run's own dataset for the rasters. A run without a checkpoint, or whose dataset
    cannot be loaded here, gets no raster: `warn(message)` is called instead (default: a warning).
    """


    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise SpikerollError("give at least one run directory")
    for d in run_dirs:
        read_metrics(d)  # fail early, with the message, on a wrong path
    out = Path(out_dir) if out_dir is not None else (run_dirs[0] / "plots" if len(run_dirs) == 1 else Path("plots"))
    written = [learning_curves(run_dirs, out / "curves.png")]
    if not raster:
        return written
    for run_dir, label in zip(run_dirs, run_labels(run_dirs)):
        if not (run_dir / "checkpoint.pt").exists():
            warn(f"{run_dir} has no checkpoint.pt yet; no spike raster for it")
            continue
        if json.loads((run_dir / "config.json").read_text()).get("model"):
            warn(f"no spike raster for {run_dir}: a --model run's layers are its module's own (curves only)")
            continue
        run_data = data
        if run_data is None:
            try:
                run_data = _load_data_for(load_trained(run_dir)[0])
            except SpikerollError as exc:
                warn(f"no spike raster for {run_dir}: its dataset cannot be loaded ({exc})")
                continue
        written.append(spike_raster(run_dir, out / f"{label.replace('/', '_')}-raster.png", data=run_data,
                                    sample=sample))
    return written
