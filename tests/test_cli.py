"""Bad input on the command line: one clear line naming the problem and the fix, exit code 2."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spikeroll.cli import main

TINY = ["--hidden", "8", "--population", "4", "--batch-size", "8", "--generations", "2", "--time-bins", "3",
        "--quiet"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("args,fragments", [
    (["--population", "7"], ["population=7", "even", "--population 8"]),
    (["--rank", "0"], ["rank=0", "--rank 1"]),
    (["--rank", "9"], ["rank=9", "between 1 and 8"]),
    (["--sigma", "0"], ["sigma=0", "> 0"]),
    (["--sigma", "-0.1"], ["sigma=-0.1"]),
    (["--dataset", "mnist-xyz"], ["mnist-xyz", "digits"]),
    (["--dataset", "nmnist", "--data-dir", "/nonexistent/nmnist"], ["/nonexistent/nmnist"]),
    (["--hidden", "12,x"], ["--hidden"]),
])
def test_train_rejects_bad_input(tmp_path, args, fragments):
    result = run("train", *TINY, "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(result, *fragments)


def test_missing_config_file(tmp_path):
    assert_one_line_error(run("train", "--config", str(tmp_path / "nope.json")), "nope.json")


def test_finished_run_refused_then_resumed_and_overwritten(tmp_path):
    out = str(tmp_path / "run")
    first = run("train", *TINY, "--out", out)
    assert first.exit_code == 0, first.output
    report = json.loads(first.output[first.output.index("{"):])
    assert report["generations"] == 2 and report["strategy"] == "eggroll"
    assert_one_line_error(run("train", *TINY, "--out", out), "finished run", "--resume", "--overwrite")
    # --resume with more generations continues from the saved config
    more = run("train", "--out", out, "--resume", "--generations", "3", "--quiet")
    assert more.exit_code == 0, more.output
    assert json.loads(more.output[more.output.index("{"):])["generations"] == 3
    assert_one_line_error(run("train", "--out", out, "--resume", "--hidden", "16", "--quiet"),
                          "incompatible config", "hidden")
    assert run("train", *TINY, "--out", out, "--overwrite").exit_code == 0


def test_eval_of_missing_run(tmp_path):
    assert_one_line_error(run("eval", str(tmp_path)), "checkpoint.pt")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    assert run("train", *TINY, "--out", str(out)).exit_code == 0
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(run("eval", str(out)), "checkpoint", "cannot be read")


def test_unknown_choice_is_one_line():
    assert_one_line_error(run("train", "--strategy", "foo"), "--strategy", "foo", "--help")


def test_data_stats_digits_json():
    result = run("data", "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["samples"] == 1797 and sum(stats["class_counts"].values()) == 1797
    assert 0.4 < stats["on_fraction"] < 0.6 and abs(sum(stats["saccade_share"]) - 1) < 1e-9


def test_data_stats_bad_dataset():
    assert_one_line_error(run("data", "stats", "--dataset", "foo"), "foo", "digits")


def test_shipped_configs_are_valid():
    """Every file in configs/ loads, validates and names only known settings (a stale key fails)."""
    from spikeroll.config import TrainConfig
    from spikeroll.data import DATASETS

    files = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert files, "configs/ holds no .toml files"
    for path in files:
        cfg = TrainConfig.from_file(path).validate()
        assert cfg.dataset in DATASETS and cfg.generations >= 1


def test_val_ids_none_clears_a_config_files_split(tmp_path):
    from spikeroll.cli import build_config

    path = tmp_path / "c.toml"
    path.write_text('dataset = "nmnist"\nval_ids = "801-1000"\n')
    assert build_config(str(path), None, {}).val_ids == "801-1000"
    assert build_config(str(path), None, {"val_ids": "none"}).val_ids is None
    assert build_config(str(path), None, {"val_ids": "1-100"}).val_ids == "1-100"


def test_eval_with_test_time_augmentation(tmp_path):
    out = str(tmp_path / "run")
    assert run("train", *TINY, "--out", out).exit_code == 0
    plain, tta = run("eval", out), run("eval", out, "--tta-shift", "1")
    assert plain.exit_code == 0 and tta.exit_code == 0, tta.output
    plain, tta = json.loads(plain.output), json.loads(tta.output)
    assert "tta_shift" not in plain and tta["tta_shift"] == 1
    assert all(0 <= tta[f"{s}_accuracy"] <= 1 for s in ("train", "val", "test"))
    assert_one_line_error(run("eval", out, "--tta-shift", "-1"), "--tta-shift", "-1")


def test_model_option_of_eval_and_export_on_a_built_in_run(tmp_path):
    """--model names the module of a --model run; on a run of the built-in network it is an error."""
    out = str(tmp_path / "run")
    assert run("train", *TINY, "--out", out).exit_code == 0
    model = f"{tmp_path / 'm.py'}:make"  # never imported: the run has no model to rebuild
    for command in (["eval", out], ["export", out], ["export-loihi", out]):
        assert_one_line_error(run(*command, "--model", model), "built-in network", "drop --model")
    assert not (tmp_path / "m.py").exists()
