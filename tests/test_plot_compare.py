"""`spikeroll plot` and `spikeroll compare` on tiny runs, and their bad-input messages."""

import json
import os

import pytest
from click.testing import CliRunner

from spikeroll.cli import main
from spikeroll.errors import SpikerollError
from spikeroll.tools.compare import compare_runs
from spikeroll.training.trainer import Trainer

from test_train import small_config, synthetic_data

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = synthetic_data()
    Trainer(small_config(generations=4, eval_every=2), root / "es", data).run(progress=False)
    Trainer(small_config(strategy="bptt", lr=0.01, generations=4, eval_every=2), root / "bp", data).run(progress=False)
    return root, data


def test_plot_writes_curves_and_rasters(finished_runs, tmp_path):
    from spikeroll.tools.plot import plot_runs

    root, data = finished_runs
    written = plot_runs([root / "es", root / "bp"], tmp_path / "plots", data=data)
    assert [p.name for p in written] == ["curves.png", "es-raster.png", "bp-raster.png"]
    assert all(is_png(p) for p in written)


def test_plot_cli_curves_only_and_bad_paths(finished_runs, tmp_path):
    root, _ = finished_runs
    result = run_cli("plot", root / "es", root / "bp", "--out", tmp_path, "--no-raster")
    assert result.exit_code == 0, result.output
    assert is_png(tmp_path / "curves.png")
    result = run_cli("plot", tmp_path / "nothing-here")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "metrics.jsonl" in result.output


def test_missing_matplotlib_is_one_clear_line(finished_runs, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = run_cli("plot", finished_runs[0] / "es", "--out", tmp_path, "--no-raster")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "pip install 'spikeroll[plot]'" in result.output


def test_raster_sample_out_of_range(finished_runs, tmp_path):
    from spikeroll.tools.plot import spike_raster

    root, data = finished_runs
    with pytest.raises(SpikerollError, match="--sample 999"):
        spike_raster(root / "es", tmp_path / "r.png", data=data, sample=999)


def test_compare_writes_one_row_per_strategy_and_rank(tmp_path):
    base = small_config(eval_every=1, sigma_final=0.02, weight_decay=0.25)
    rows = compare_runs(base, tmp_path, ranks=[1, 2], generations=2, data=synthetic_data(), progress=False,
                        echo=lambda *_: None, isolate=False)  # in this process: quick
    markdown = (tmp_path / "compare.md").read_text()
    header = markdown.split("\n\n")[1]
    # the settings that the runs share are stated with the table, schedules and regularisation included
    assert "pool 1" in header and "weight decay 0.25" in header and "σ=0.1 → 0.02" in header
    assert [(r["strategy"], r["rank"]) for r in rows] == [("eggroll", 1), ("eggroll", 2), ("openes", None),
                                                          ("bptt", None)]
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header + one row per run
    assert [line.split("|")[1].strip() for line in table[1:]] == ["eggroll", "eggroll", "openes", "bptt"]
    assert [line.split("|")[2].strip() for line in table[1:]] == ["1", "2", "full", "—"]
    for r in rows:
        assert r["generations"] == 2 and r["peak_rss_mib"] > 0 and r["wall_seconds"] > 0
        assert 0 <= r["test_accuracy"] <= 1
    assert json.loads((tmp_path / "bptt" / "report.json").read_text())["strategy"] == "bptt"
    assert json.loads((tmp_path / "eggroll-r2" / "config.json").read_text())["rank"] == 2
    assert is_png(tmp_path / "compare.png")
    assert not (tmp_path / ".compare-data.pt").exists()
    with pytest.raises(SpikerollError, match="already holds run"):
        compare_runs(base, tmp_path, ranks=[1], generations=2, data=synthetic_data(), progress=False)


def test_compare_runs_each_run_in_its_own_process(tmp_path):
    lines = []
    rows = compare_runs(small_config(eval_every=1), tmp_path, strategies=["bptt"], budget_seconds=30, generations=2,
                        data=synthetic_data(), progress=False, echo=lines.append)
    (row,) = rows
    resources = json.loads((tmp_path / "bptt" / "resources.json").read_text())
    assert resources["pid"] != os.getpid() and row["generations"] == 2
    assert row["peak_rss_mib"] >= resources["rss_before_training_mib"] > 0
    assert row["peak_rss_steps_mib"] is None or row["peak_rss_steps_mib"] > 0
    assert "| bptt | — | 2 |" in lines[-1]  # the table is printed at the end
    assert "isolate=False" not in (tmp_path / "compare.md").read_text()


@pytest.mark.parametrize("args,fragment", [
    (["--strategies", "eggroll,sgd"], "unknown strategy 'sgd'"),
    (["--ranks", ""], "--ranks is empty"),
    (["--ranks", ","], "--ranks is empty"),
    (["--ranks", "1,x"], "not a comma-separated list"),
    (["--ranks", "0"], ">= 1"),
    (["--ranks", "64", "--hidden", "16"], "rank=64 is out of range; it must be between 1 and 10"),
    (["--budget-seconds", "0"], "must be > 0"),
    (["--generations", "0"], "must be >= 1"),
    (["--population", "7"], "population=7"),
])
def test_compare_rejects_bad_input(tmp_path, args, fragment):
    result = run_cli("compare", "--out", tmp_path / "cmp", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cmp").exists()  # nothing ran


def test_train_accepts_bptt_strategy(tmp_path):
    result = run_cli("train", "--strategy", "bptt", "--lr", "0.005", "--hidden", "8", "--batch-size", "8",
                     "--generations", "1", "--time-bins", "3", "--quiet", "--out", tmp_path, "--dataset", "nope")
    assert result.exit_code == 2 and "'nope' is not one of 'digits'" in result.output  # bptt itself was accepted
