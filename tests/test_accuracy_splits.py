"""benchmarks/accuracy_splits.py: ES and BPTT per split, and their difference, on the offline digits set."""

import json

import pytest

from spikeroll.errors import SpikerollError


def test_table_matches_the_runs_reports(tmp_path, benchmark_script):
    script = benchmark_script("accuracy_splits")
    text = script.main(["--dataset", "digits", "--splits", "seed:0,seed:1", "--generations", "3",
                        "--bptt-generations", "4", "--out", str(tmp_path)])
    rows = [line for line in text.splitlines() if line.startswith("| seed")]
    assert len(rows) == 2
    accs = {}
    for split, row in zip(("seed0", "seed1"), rows):
        reports = {s: json.loads((tmp_path / split / s / "report.json").read_text()) for s in ("eggroll", "bptt")}
        configs = {s: json.loads((tmp_path / split / s / "config.json").read_text()) for s in ("eggroll", "bptt")}
        assert configs["eggroll"]["seed"] == configs["bptt"]["seed"] == int(split[-1])
        assert (configs["bptt"]["strategy"], configs["bptt"]["lr"]) == ("bptt", 0.002)
        assert (reports["eggroll"]["generations"], reports["bptt"]["generations"]) == (3, 4)
        cells = [c.strip() for c in row.strip("|").split("|")]
        es, bp = reports["eggroll"]["val_accuracy"], reports["bptt"]["val_accuracy"]
        assert cells[1] == f"{100 * es:.1f} %" and cells[2] == f"{100 * bp:.1f} %"
        assert cells[3] == f"{100 * (es - bp):+.1f}"
        accs[split] = (es, bp)
    mean_row = text.splitlines()[-1].strip("|").split("|")
    mean_gap = sum(es - bp for es, bp in accs.values()) / 2
    assert mean_row[3].strip() == f"{100 * mean_gap:+.1f}"
    assert (tmp_path / "accuracy_splits.md").read_text() == text


@pytest.mark.parametrize("bad", ["ids:", "seed:x", "fold:1"])
def test_bad_split_names_the_fix(bad, benchmark_script):
    with pytest.raises(SpikerollError, match="ids:FIRST-LAST or seed:N"):
        benchmark_script("accuracy_splits").parse_split(bad)


def test_split_fields(benchmark_script):
    script = benchmark_script("accuracy_splits")
    assert script.parse_split("ids:801-1000") == ("ids801-1000", {"val_ids": "801-1000", "seed": 0})
    assert script.parse_split("seed:2") == ("seed2", {"val_ids": None, "seed": 2})
