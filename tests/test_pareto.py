"""`spikeroll pareto`: the dominance rule against a hand-worked example, and a tiny sweep on synthetic
data: its run directories, pareto.md and pareto.png, and that a rerun skips the finished points."""

import json

import pytest

from spikeroll.errors import SpikerollError
from spikeroll.tools.pareto import mark_fronts, non_dominated, pareto_sweep, parse_values, plan_points

from test_train import small_config, synthetic_data


def test_non_dominated_hand_worked():
    #           A           B           C: B has less   D: A is      E: A costs   F: cheapest  G: equal to B,
    #                                   cost, more acc  better       less         of all       so neither wins
    points = [(100, 0.90), (50, 0.85), (60, 0.80), (100, 0.88), (200, 0.90), (10, 0.50), (50, 0.85)]
    assert non_dominated(points) == [True, True, False, False, False, True, True]


def test_fronts_are_per_method():
    rows = [{"method": "es", "synops": 10.0, "val_accuracy": 0.5},
            {"method": "es", "synops": 20.0, "val_accuracy": 0.4},
            {"method": "bptt", "synops": 30.0, "val_accuracy": 0.3}, {"method": "bptt", "error": "x"}]
    mark_fronts(rows)  # the BPTT point is dominated by ES's, but fronts are drawn per method
    assert [r.get("front") for r in rows] == [True, False, True, None]


def test_parse_values():
    assert parse_values("0, 0.5,1,1", "--es-weights") == [0.0, 0.5, 1.0]
    assert parse_values("", "--bptt-weights") == []
    with pytest.raises(SpikerollError, match="--es-weights holds -1"):
        parse_values("0,-1", "--es-weights")
    with pytest.raises(SpikerollError, match="comma-separated list of numbers"):
        parse_values("a", "--bptt-weights")
    with pytest.raises(SpikerollError, match="no operating points"):
        plan_points(small_config())


def test_rate_targets_shape_the_bptt_points_only():
    es, bptt = plan_points(small_config(), [1.0], [2.0], bptt_rate_target=[0.05])
    assert es.cfg.rate_target is None and es.cfg.rate_weight == 0.0
    assert bptt.cfg.rate_target == [0.05] and bptt.cfg.rate_weight == 2.0 and bptt.knob == "rate-weight 2, targets 0.05"
    with pytest.raises(SpikerollError, match="--rate-target needs --rate-weight"):
        plan_points(small_config(), [], [0.0], bptt_rate_target=[0.05])


def test_sweep_writes_table_and_figure_and_resumes(tmp_path):
    pytest.importorskip("matplotlib")
    base = small_config(generations=6, eval_every=6, checkpoint_every=6)
    points = plan_points(base, [0.0, 50.0], [0.0, 50.0], bptt_lr=0.01, bptt_generations=8)
    assert [p.name for p in points] == ["es-w0", "es-w50", "bptt-w0", "bptt-w50"]
    assert points[1].cfg.objective == "synops" and points[1].cfg.synops_weight == 50.0
    assert points[3].cfg.strategy == "bptt" and points[3].cfg.rate_weight == 50.0 and points[3].cfg.generations == 8
    lines = []
    rows = pareto_sweep(base, tmp_path, points, data=synthetic_data(), progress=False, echo=lines.append,
                        isolate=False)
    for p in points:
        report = json.loads((tmp_path / p.name / "report.json").read_text())
        row = next(r for r in rows if r["name"] == p.name)
        assert row["val_accuracy"] == report["val_accuracy"] and row["synops"] == report["val_synops"] > 0
        assert row["generations"] == p.cfg.generations
    for method in ("es", "bptt"):  # each method's front is what the dominance rule says of its own rows
        mine = [r for r in rows if r["method"] == method]
        assert [r["front"] for r in mine] == non_dominated([(r["synops"], r["val_accuracy"]) for r in mine])
    text = (tmp_path / "pareto.md").read_text()
    assert text.count("\n| es |") == 2 and text.count("\n| bptt |") == 2
    assert "`spikeroll train --time-bins 4 --hidden 8 " in text and "--rate-weight 50 " in text
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    # a rerun trains nothing; a changed setting is refused instead of mixing runs
    lines.clear()
    pareto_sweep(base, tmp_path, points, data=synthetic_data(), progress=False, echo=lines.append, isolate=False)
    assert sum(": done" in line for line in lines) == 4
    before = json.loads((tmp_path / "bptt-w50" / "report.json").read_text())
    (tmp_path / "bptt-w50" / "report.json").unlink()  # as if killed after its last checkpoint
    lines.clear()
    pareto_sweep(base, tmp_path, points, data=synthetic_data(), progress=False, echo=lines.append, isolate=False)
    assert sum(": done" in line for line in lines) == 3 and any("bptt-w50" in x and ": resume" in x for x in lines)
    after = json.loads((tmp_path / "bptt-w50" / "report.json").read_text())
    assert after["val_accuracy"] == before["val_accuracy"] and after["generations"] == 8
    changed = plan_points(small_config(generations=7, eval_every=6, checkpoint_every=6), [0.0])
    with pytest.raises(SpikerollError, match="other settings than point es-w0"):
        pareto_sweep(base, tmp_path, changed, data=synthetic_data(), progress=False, echo=lines.append,
                     isolate=False)


def test_early_exit_rows_are_the_networks_decisions_on_cut_recordings(tmp_path):
    """With a confidence every readout passes at once, each point's early row is its final network
    on the recordings cut after the first bin: checked against that network's own forward on the
    cut frames (accuracy, SynOps), no early-exit code involved."""
    from spikeroll.training.rundir import load_trained

    base = small_config(generations=4, eval_every=4, checkpoint_every=4)
    points = plan_points(base, [0.0], [0.0], decide_weights=[0.5], bptt_lr=0.01, bptt_generations=4)
    data = synthetic_data()
    rows = pareto_sweep(base, tmp_path, points, data=data, progress=False, echo=lambda _: None, isolate=False,
                        early=[1e-9, 1.0])
    assert [r["method"] for r in rows] == ["es", "es-decide", "bptt", "es-early", "es-early", "bptt-early",
                                           "bptt-early"]
    decide = json.loads((tmp_path / "es-decide-w0.5" / "report.json").read_text())  # trained to decide early:
    assert json.loads((tmp_path / "es-decide-w0.5" / "config.json").read_text())["objective"] == "early"
    assert rows[1]["val_accuracy"] == decide["val_early_accuracy"] and rows[1]["synops"] == decide["val_early_synops"]
    assert rows[1]["knob"] == f"early objective λ 0.5, C 0.9 ({decide['val_early_bins']:.2f} bins)"
    for point in (points[0], points[2]):
        _, net = load_trained(tmp_path / point.name)
        net.use_kernel = False
        for split, prefix in ((data.val, "val"), (data.test, "test")):
            found = []
            cut = net.logits(split.frames[:, :1].float(), counts=found)
            first = next(r for r in rows if r["name"] == f"{point.name}-exit1e-09")
            assert first[f"{prefix}_accuracy"] == int((cut.argmax(-1) == split.labels).sum()) / len(split.labels)
            if prefix == "val":
                assert first["early_bins"] == 1.0
                assert abs(first["synops"] - float(found[0].synops().mean())) < 1e-6 * first["synops"] + 1e-9
        full = next(r for r in rows if r["name"] == f"{point.name}-exit1")  # never confident enough: all bins
        trained = next(r for r in rows if r["name"] == point.name)
        assert full["early_bins"] <= 4 and full["generations"] == trained["generations"]
    text = (tmp_path / "pareto.md").read_text()
    assert text.count("\n| es-early |") == 2 and "exit at 1e-09 (1.00 bins)" in text
    with pytest.raises(SpikerollError, match="--early-exit holds 1.5"):
        pareto_sweep(base, tmp_path, points, data=data, progress=False, echo=lambda _: None, isolate=False,
                     early=[1.5])
