"""`spikeroll pareto`: the accuracy-against-SynOps front of ES and BPTT on the same network and data.

Each operating point is an ordinary run directory under OUT, trained one after another in its own
fresh process (`compare.run_worker` through `isolate.run_isolated`, as `spikeroll compare`):

    es-w{λ}        ES (the base strategy, eggroll unless openes) with --objective synops --synops-weight λ
    es-budget{S}   ES with --objective budget --synops-budget S (the base's --synops-weight)
    es-loihi-w{λ}  the same as es-w{λ} on the integer network (--neuron loihi, int8 unless --weight-bits)
    es-decide-w{λ} ES with --objective early --synops-weight λ (the base's --early-confidence C):
                   trained to decide early; its row is its early decisions at C
    bptt-w{λ}      --strategy bptt --rate-weight λ (its own lr and step count)

λ is the same number for both methods: ES's penalty and BPTT's regulariser divide the same SynOps
count by the same all-firing reference (docs/energy.md). A point whose run directory already holds a
report.json with the planned settings is skipped, an unfinished one is resumed, so an
interrupted sweep continues where it stopped. Writes OUT/pareto.md (one row per point) and
OUT/pareto.png (validation accuracy against SynOps per inference, one series per method, each
method's non-dominated points joined).

With early-exit confidences (`--early-exit 0.9,0.99`), every finished float point is also evaluated
deciding each validation recording at its first time bin whose readout confidence reaches C
(`training.evaluation.early_exit`): one more row per point and C (method es-early or bptt-early),
its accuracy against the SynOps actually spent, input events included. Nothing is retrained.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.tools.compare import BPTT_LR, DATA_FILE, SPEC, run_worker, write_data
from spikeroll.tools.isolate import run_isolated
from spikeroll.tools.plot import _figure
from spikeroll.training.evaluation import early_exit
from spikeroll.training.factories import load_data
from spikeroll.training.rundir import load_trained

DPI = 120
METHOD_ORDER = ("es", "es-loihi", "bptt", "es-early", "bptt-early", "es-decide")
COLORS = {"es": "tab:blue", "es-loihi": "tab:green", "bptt": "tab:red", "es-early": "tab:cyan",
          "bptt-early": "tab:orange", "es-decide": "tab:purple"}
EARLY_METHODS = {"es": "es-early", "bptt": "bptt-early"}  # the integer network has no early-exit path
DEFAULTS = TrainConfig().to_dict()


@dataclass
class Point:
    """One operating point: its run directory's name, method, knob (as shown) and settings."""

    name: str
    method: str
    knob: str
    cfg: TrainConfig


def parse_values(text: str | None, option: str) -> list[float]:
    """A comma-separated list of numbers >= 0 ('0,0.5,1'); empty or None: no points."""
    if text is None or not str(text).strip():
        return []
    try:
        values = [float(part) for part in str(text).replace(" ", "").split(",") if part]
    except ValueError:
        raise SpikerollError(f"{option} {text!r} is not a comma-separated list of numbers; "
                             f"try {option} 0,1,10") from None
    bad = [v for v in values if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise SpikerollError(f"{option} holds {bad[0]:g}; every value must be a finite number >= 0")
    return list(dict.fromkeys(values))


def plan_points(base: TrainConfig, es_weights=(), bptt_weights=(), *, es_budgets=(), loihi_weights=(),
                decide_weights=(), bptt_lr: float = BPTT_LR, bptt_generations: int | None = None,
                bptt_rate_target: list[float] | None = None) -> list[Point]:
    """The sweep's points, every config validated before anything runs. `bptt_rate_target`: per-layer
    target rates of the BPTT points' regulariser (--rate-target)."""
    strategy = base.strategy if base.strategy in ("eggroll", "openes") else "eggroll"
    es = dataclasses.replace(base, strategy=strategy, rate_weight=0.0, rate_target=None)
    points = [Point(f"es-w{w:g}", "es", f"synops-weight {w:g}",
                    dataclasses.replace(es, objective="synops", synops_weight=w)) for w in es_weights]
    points += [Point(f"es-budget{s:g}", "es", f"synops-budget {s:g}",
                     dataclasses.replace(es, objective="budget", synops_budget=s)) for s in es_budgets]
    loihi = dataclasses.replace(es, strategy="eggroll", neuron="loihi", weight_bits=base.weight_bits or 8)
    points += [Point(f"es-loihi-w{w:g}", "es-loihi", f"synops-weight {w:g}, int{loihi.weight_bits}",
                     dataclasses.replace(loihi, objective="synops", synops_weight=w)) for w in loihi_weights]
    c = base.early_confidence
    points += [Point(f"es-decide-w{w:g}", "es-decide", f"early objective λ {w:g}, C {c:g}",
                     dataclasses.replace(es, objective="early", synops_weight=w)) for w in decide_weights]
    bptt = dataclasses.replace(base, strategy="bptt", lr=bptt_lr, objective="ce", fitness=None,
                               generations=bptt_generations or base.generations, rate_target=bptt_rate_target)
    shown = "" if bptt_rate_target is None else f", targets {','.join(f'{t:g}' for t in bptt_rate_target)}"
    points += [Point(f"bptt-w{w:g}", "bptt", f"rate-weight {w:g}{shown}", dataclasses.replace(bptt, rate_weight=w))
               for w in bptt_weights]
    if not points:
        raise SpikerollError("no operating points: give --es-weights, --es-budgets, --loihi-weights, --decide-weights "
                             "or --bptt-weights")
    for point in points:
        point.cfg.validate()
    return points


def command(cfg: TrainConfig, out: Path) -> str:
    """The `spikeroll train` command line that trains this run by itself: every setting that
    differs from the defaults."""
    def text(value) -> str:
        return f"{value:g}" if isinstance(value, float) else "none" if value is None else str(value)

    flags = []
    for key, value in cfg.to_dict().items():
        if value != DEFAULTS[key]:
            shown = ",".join(map(text, value)) if isinstance(value, list) else text(value)
            flags.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join(["spikeroll train", *flags, f"--out {out}"])


def _state(point: Point, run_dir: Path, overwrite: bool) -> str:
    """'done' (skip), 'resume' or 'new'; a run directory trained with other settings is refused."""
    saved = run_dir / "config.json"
    if overwrite or not saved.exists():
        return "new"
    try:
        same = TrainConfig.from_dict(json.loads(saved.read_text())) == point.cfg
    except (ValueError, SpikerollError):
        same = False
    if not same:
        raise SpikerollError(f"{run_dir} holds a run with other settings than point {point.name}; pass --overwrite "
                             "to replace it or choose another --out")
    # resume: from the last checkpoint, or from generation 0 where the run stopped before its first
    return "done" if (run_dir / "report.json").exists() else "resume"


def pareto_sweep(base: TrainConfig, out_dir: str | Path, points: list[Point], *, data=None, overwrite=False,
                 progress=True, echo=print, isolate: bool = True, early: list[float] = ()) -> list[dict]:
    """Train every point not yet finished under OUT, then write OUT/pareto.md and OUT/pareto.png.
    `data` (Splits-like) replaces loading the dataset, as in `compare.compare_runs`; `early`: the
    early-exit confidences each finished float point is evaluated at. Returns the rows."""
    bad = [c for c in early if not 0.0 < c <= 1.0]
    if bad:
        raise SpikerollError(f"--early-exit holds {bad[0]:g}; every confidence must be in (0, 1], e.g. 0.9,0.99")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_path = None
    if data is not None:
        data_path = out / DATA_FILE
        write_data(data, data_path)
    failures = {}
    try:
        for i, point in enumerate(points, 1):
            run_dir = out / point.name
            state = _state(point, run_dir, overwrite)
            echo(f"[{i}/{len(points)}] {point.name} ({point.method}, {point.knob}): {state}")
            if state == "done":
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            spec = {"config": point.cfg.to_dict(), "out": str(run_dir), "data": str(data_path) if data_path else None,
                    "max_seconds": None, "overwrite": overwrite, "resume": state == "resume", "progress": progress}
            (run_dir / SPEC).write_text(json.dumps(spec, indent=2) + "\n")
            if isolate:
                outcome = run_isolated(run_worker, run_dir / SPEC)
                result = outcome.value if outcome.ok else {"error": f"the run's process ended without a result "
                                                                    f"({outcome.failure})"}
            else:
                result = run_worker(run_dir / SPEC)
            if result.get("error"):
                failures[point.name] = result["error"]
    finally:
        if data_path is not None:
            data_path.unlink(missing_ok=True)
    rows = [row(point, out, failures.get(point.name)) for point in points]
    if early:
        rows += early_rows(base, points, rows, out, early, data)
    mark_fronts(rows)
    (out / "pareto.md").write_text(markdown(base, rows))
    if any(r.get("synops") is not None for r in rows):
        plot_front(rows, out / "pareto.png")
    echo(table(rows))
    if failures:
        name, error = next(iter(failures.items()))
        raise SpikerollError(f"{len(failures)} of {len(points)} points failed ({name}: {error}); "
                             f"see {out / 'pareto.md'}")
    return rows


def row(point: Point, out: Path, error: str | None = None) -> dict:
    """One table row from the point's report.json (an 'error' key when it failed or has no report)."""
    run_dir = out / point.name
    base = {"name": point.name, "method": point.method, "knob": point.knob,
            "command": command(point.cfg, run_dir), "front": False}
    path = run_dir / "report.json"
    if error or not path.exists():
        return {**base, "error": error or "no report.json"}
    report = json.loads(path.read_text())
    # a run trained to decide early is measured deciding early (its report's early_ keys)
    key = "early_" if point.cfg.objective == "early" else ""
    if key:
        base["knob"] += f" ({report.get('val_early_bins', float('nan')):.2f} bins)"
    return {**base, "val_accuracy": report.get(f"val_{key}accuracy"),
            "test_accuracy": report.get(f"test_{key}accuracy"), "synops": report.get(f"val_{key}synops"),
            "synops_hidden": report.get(f"val_{key}synops_hidden"), "generations": report.get("generations"),
            "seconds": report.get("wall_seconds")}


def early_rows(base: TrainConfig, points: list[Point], rows: list[dict], out: Path, confidences,
               data=None) -> list[dict]:
    """One row per finished float point and confidence: that point's final network deciding early on
    the validation (and test) split. The data is loaded once: every point shares base's dataset."""
    done = [(p, r) for p, r in zip(points, rows) if p.method in EARLY_METHODS and not r.get("error")]
    if done and data is None:
        data = load_data(base, progress=False)
    extra = []
    for point, trained in done:
        _, net = load_trained(out / point.name)
        for c in confidences:
            val = early_exit(net, data.val, c, "val_")
            test = early_exit(net, data.test, c, "test_") if data.test is not None else {}
            extra.append({**trained, "name": f"{point.name}-exit{c:g}", "method": EARLY_METHODS[point.method],
                          "knob": f"{point.knob}, exit at {c:g} ({val['val_early_bins']:.2f} bins)",
                          "val_accuracy": val["val_early_accuracy"], "test_accuracy": test.get("test_early_accuracy"),
                          "synops": val["val_early_synops"], "synops_hidden": val["val_early_synops_hidden"],
                          "early_bins": val["val_early_bins"], "front": False})
    return extra


def non_dominated(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) pairs: whether no other pair has cost <= and accuracy >= with one of
    them strict (lower cost is better, higher accuracy is better)."""
    return [not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in points) for c, a in points]


def mark_fronts(rows: list[dict], cost: str = "synops") -> None:
    """Set row['front'] on each method's non-dominated rows (validation accuracy against `cost`)."""
    for method in METHOD_ORDER:
        done = [r for r in rows if r["method"] == method and r.get(cost) is not None
                and r.get("val_accuracy") is not None]
        for r, front in zip(done, non_dominated([(r[cost], r["val_accuracy"]) for r in done])):
            r["front"] = front


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def table(rows: list[dict]) -> str:
    """The markdown table, one row per point."""
    head = ["method", "knob", "val acc", "test acc", "SynOps / inference", "hidden SynOps (share)", "front",
            "steps", "train s", "command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        if r.get("error"):
            error = " ".join(str(r["error"]).split()).replace("|", "\\|")
            cells = [r["method"], r["knob"], f"failed: {error}"] + [""] * 6 + [f"`{r['command']}`"]
        else:
            hidden, total = r["synops_hidden"], r["synops"]
            share = "—" if not total else f"{hidden:,.0f} ({100 * hidden / total:.1f} %)"
            cells = [r["method"], r["knob"], _pct(r["val_accuracy"]), _pct(r["test_accuracy"]),
                     "—" if r["synops"] is None else f"{r['synops']:,.0f}", share, "yes" if r["front"] else "",
                     str(r["generations"]), "—" if r["seconds"] is None else f"{r['seconds']:.0f}", f"`{r['command']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(base: TrainConfig, rows: list[dict]) -> str:
    """pareto.md: the settings shared by every point, the table, and how each column is measured."""
    return (
        "# spikeroll pareto\n\n"
        f"Dataset `{base.dataset}` (val ids {base.val_ids or f'fraction {base.val_fraction}'}), {base.time_bins} time "
        f"bins, pool {base.pool}; hidden {base.hidden}; seed {base.seed}. Every point is a run directory next to this "
        "file, trained in its own process one after another.\n\n" + table(rows) +
        "\nval/test acc: the final network on the validation and test splits (— where there is no test split). "
        "SynOps / inference: the final network on the validation split, input events included "
        "(`val_synops`, docs/energy.md); hidden: the network's own spikes (`val_synops_hidden`), the part training "
        "controls. front: not dominated by another point of the same method (no other has at most the SynOps and "
        "at least the validation accuracy). train s: training seconds (evaluations excluded). The integer network "
        "(es-loihi) counts its input as graded spikes, one message per nonzero pooled entry, so its input SynOps "
        "are not comparable with the float network's."
        + (" es-early/bptt-early: the point above it deciding each recording at the first time bin whose readout "
           "confidence reaches C (bins: the mean bins used), against the SynOps actually spent; not retrained."
           if any(r["method"].endswith("-early") for r in rows) else "")
        + (" es-decide: ES trained with --objective early, measured deciding early at its own C."
           if any(r["method"] == "es-decide" for r in rows) else "")
        + "\n\n![accuracy against SynOps](pareto.png)\n"
    )


def plot_front(rows: list[dict], path: str | Path) -> Path:
    """pareto.png: validation accuracy against total SynOps (left) and hidden SynOps (right) per
    inference, one series per method; each method's non-dominated points are filled and joined."""
    fig = _figure(figsize=(11, 4.2))
    from matplotlib.ticker import FuncFormatter  # optional dependency, present once _figure succeeded

    axes = fig.subplots(1, 2)
    for ax, cost, label in ((axes[0], "synops", "SynOps per inference (input events included)"),
                            (axes[1], "synops_hidden", "hidden SynOps per inference")):
        for method in METHOD_ORDER:
            done = [r for r in rows if r["method"] == method and r.get(cost) is not None]
            if not done:
                continue
            front = non_dominated([(r[cost], r["val_accuracy"]) for r in done])
            xs, ys = [r[cost] for r in done], [100 * r["val_accuracy"] for r in done]
            ax.scatter(xs, ys, facecolors="none", edgecolors=COLORS[method], label=method)
            best = sorted((x, y) for x, y, f in zip(xs, ys, front) if f)
            ax.plot([x for x, _ in best], [y for _, y in best], "o-", color=COLORS[method])
        ax.set_xlabel(label)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e3:,.4g}k"))  # 490.5k, not 490500
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(title="method (filled: front)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return Path(path)
