"""benchmarks/accuracy_splits.py: ES and BPTT per split, and their difference, on the offline digits set."""

import importlib.util
import json
from pathlib import Path

import pytest

from spikeroll.errors import SpikerollError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy_splits.py"


def load_script():
    spec = importlib.util.spec_from_file_location("accuracy_splits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_matches_the_runs_reports(tmp_path):
    script = load_script()
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
def test_bad_split_names_the_fix(bad):
    with pytest.raises(SpikerollError, match="ids:FIRST-LAST or seed:N"):
        load_script().parse_split(bad)


def test_split_fields():
    script = load_script()
    assert script.parse_split("ids:801-1000") == ("ids801-1000", {"val_ids": "801-1000", "seed": 0})
    assert script.parse_split("seed:2") == ("seed2", {"val_ids": None, "seed": 2})
