"""The control run through the command line: `spikeroll train --env`, `eval`, `play`, `export`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("gymnasium")

from spikeroll.cli import main  # noqa: E402

SHORT = ["--generations", "2", "--population", "8", "--hidden", "8", "--time-bins", "2", "--quiet"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_train_eval_play_export_a_short_cartpole_run(tmp_path):
    out = tmp_path / "cp"
    result = run("train", "--env", "CartPole-v1", "--out", str(out), *SHORT)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    saved = json.loads((out / "report.json").read_text())
    assert report["mean_return"] == saved["mean_return"] and 1 <= report["mean_return"] <= 500
    assert json.loads((out / "config.json").read_text())["env"] == "CartPole-v1"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    result = run("eval", str(out), "--episodes", "3")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    assert evaluated["episodes"] == 3 and 1 <= evaluated["mean_return"] <= 500

    result = run("play", str(out), "--out", str(tmp_path / "ep.gif"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ep.gif").read_bytes()[:6] in (b"GIF87a", b"GIF89a")

    pytest.importorskip("nir")
    result = run("export", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "network.nir").is_file()


def test_resume_finds_the_control_run_without_env(tmp_path):
    out = tmp_path / "cp"
    assert run("train", "--env", "CartPole-v1", "--out", str(out), *SHORT).exit_code == 0
    result = run("train", "--out", str(out), "--resume", "--generations", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("args, message", [
    (["--env", "NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
    (["--env", "CartPole-v1", "--batch-size", "3"], "--batch-size does not apply to a control run"),
    (["--env", "CartPole-v1", "--population", "7"], "population=7 must be an even number"),
])
def test_bad_control_input_is_one_line(tmp_path, args, message):
    result = run("train", "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_control_runs_follow_the_run_directory_rules(tmp_path):
    """The same no-run-lost rules as classification (spikeroll.training.runfiles): --overwrite with a
    bad setting leaves a finished run whole; a torn last metrics line is skipped on resume."""
    out = tmp_path / "cp"
    assert run("train", "--env", "CartPole-v1", "--out", str(out), *SHORT).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = run("train", "--env", "CartPole-v1", "--out", str(out), "--overwrite", *SHORT, "--rank", "999")
    assert result.exit_code == 2 and "rank=999" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"generation": 2, "fitn')  # a kill during the write of generation 2's line
    result = run("train", "--out", str(out), "--resume", "--generations", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "skipped its torn last line" in result.stderr
    generations = [json.loads(line)["generation"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert generations == [0, 1, 2]
