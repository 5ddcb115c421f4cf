"""Hostile run directories: opening one never runs code, and every crafted file is one clear error.

Each test crafts a run directory from a real one (a checkpoint whose pickle would run a shell
command, wrong shapes, a scalar in place of the parameters, missing keys, a config naming a payload
model file, ...) and runs it through the commands that open run directories: `spikeroll eval`,
`export`, `export-loihi`, `train --resume` and `train --init-from`. Every one must end with exit
code 2, one `error:` line, and no marker file: the payloads would create one if they ever ran.
"""

import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from spikeroll.cli import main

TINY = ["--hidden", "16", "--population", "8", "--batch-size", "32", "--generations", "4", "--eval-every", "2",
        "--checkpoint-every", "2", "--time-bins", "3", "--quiet"]
# every crafted run directory this suite tried, by name; tests/conftest.py reports the count
CRAFTED_INPUTS: list[str] = []


class Payload:
    """Unpickling this runs `touch MARKER` (pickle calls what __reduce__ returns)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(result, marker: Path, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not marker.exists(), f"the payload ran: {marker} exists"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A real finished run (digits, tiny) that the hostile directories are made from."""
    out = tmp_path_factory.mktemp("attack") / "base"
    result = run("train", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def craft(base: Path, root: Path, name: str, change=None, *, raw: bytes | None = None) -> Path:
    """Copy of `base` as root/name whose checkpoint is `change(state)` (a dict to save) or `raw` bytes."""
    out = root / name
    shutil.copytree(base, out)
    if raw is not None:
        (out / "checkpoint.pt").write_bytes(raw)
    elif change is not None:
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        torch.save(change(state), out / "checkpoint.pt")
    CRAFTED_INPUTS.append(name)
    return out


def opened_by_every_command(directory: Path, tmp_path: Path, marker: Path, *fragments, train=True):
    """eval, export, export-loihi (and, with train, train --resume and --init-from) all refuse it."""
    assert_refused(run("eval", directory), marker, *fragments)
    assert_refused(run("export", directory, "--out", tmp_path / "x.nir"), marker, *fragments)
    assert_refused(run("export-loihi", directory, "--out", tmp_path / "x.json"), marker, *fragments)
    if train:
        assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, *fragments)
        assert_refused(run("train", *TINY, "--out", tmp_path / "ft", "--init-from", directory), marker, *fragments)
        assert not (tmp_path / "ft" / "checkpoint.pt").exists()


def with_payload(marker):
    def change(state):
        state["optimizer"] = {"state": Payload(marker), "param_groups": []}
        return state
    return change


def test_pickle_payload_never_runs(base, tmp_path):
    marker = tmp_path / "MARKER"
    directory = craft(base, tmp_path, "payload-in-torch-save", with_payload(marker))
    opened_by_every_command(directory, tmp_path, marker, "cannot be read", "more than tensors")
    # the same payload as a bare pickle (torch.load's legacy format), and as the whole file
    raw = craft(base, tmp_path, "payload-bare-pickle", raw=pickle.dumps({"config": Payload(marker)}, protocol=2))
    opened_by_every_command(raw, tmp_path, marker, "cannot be read", train=False)
    # the payload really would run: unpickling it without weights_only creates the marker
    pickle.loads(pickle.dumps(Payload(tmp_path / "CONTROL")))
    assert (tmp_path / "CONTROL").exists()


def _set(key, value):
    def change(state):
        state[key] = value
        return state
    return change


def _param(i, make):
    def change(state):
        state["params"][i] = make(state["params"][i])
        return state
    return change


@pytest.mark.parametrize("name,change,fragments", [
    ("wrong-shape", _param(2, lambda p: torch.zeros(3, 4)),
     ["params[2] 'layer1.weight' has shape (3, 4), the network's is (10, 16)"]),
    ("wrong-dtype", _param(0, lambda p: p.double()), ["params[0] 'layer0.weight' has dtype torch.float64"]),
    ("scalar-params", _set("params", torch.tensor(0.5)), ["params is a Tensor, not a list of tensors"]),
    ("scalar-each", lambda s: {**s, "params": [torch.tensor(0.5)] * len(s["params"])},
     ["params[0] 'layer0.weight' has shape ()"]),
    ("missing-params", lambda s: {k: v for k, v in s.items() if k != "params"}, ["'params' are missing"]),
    ("missing-optimizer", lambda s: {k: v for k, v in s.items() if k not in ("optimizer", "scheduler")},
     ["'optimizer', 'scheduler' are missing"]),
    ("too-few-tensors", lambda s: {**s, "params": s["params"][:-1], "param_names": s["param_names"][:-1]},
     ["params holds 3 tensors, the network its config builds has 4"]),
    ("renamed-tensor", lambda s: {**s, "param_names": ["x", *s["param_names"][1:]]},
     ["param_names[0] is 'x', the network's is 'layer0.weight'"]),
    ("not-a-dict", lambda s: [s["params"]], ["holds a list, not a dict"]),
    ("format-2", _set("format", 2), ["format is 2, not 1"]),
    ("generation-text", _set("generation", "4"), ["generation is '4'"]),
    ("elapsed-nan", _set("elapsed", float("nan")), ["elapsed is nan"]),
    ("huge-sizes", _set("sizes", [10**9, 16, 10]), ["sizes is [1000000000, 16, 10]"]),
    ("config-not-dict", _set("config", "hidden=16"), ["config is a str, not a dict"]),
    ("config-unknown-key", lambda s: {**s, "config": {**s["config"], "evil": 1}}, ["unknown setting(s)", "evil"]),
    ("config-wrong-type", lambda s: {**s, "config": {**s["config"], "beta": "0.9"}}, ["beta", "'0.9'"]),
])
def test_malformed_checkpoint_is_one_clear_error(base, tmp_path, name, change, fragments):
    directory = craft(base, tmp_path, name, change)
    marker = tmp_path / "MARKER"
    assert_refused(run("eval", directory), marker, f"checkpoint {directory / 'checkpoint.pt'}", *fragments)
    assert_refused(run("export", directory, "--out", tmp_path / "x.nir"), marker, *fragments)


@pytest.mark.parametrize("name,change,fragments", [
    ("resume-wrong-shape", _param(2, lambda p: torch.zeros(3, 4)), ["params[2] 'layer1.weight' has shape (3, 4)"]),
    ("resume-scalar-params", _set("params", torch.tensor(0.5)), ["params is a Tensor"]),
    ("resume-bad-adam-state", lambda s: {**s, "optimizer": {**s["optimizer"], "state": {
        **s["optimizer"]["state"], 0: {**s["optimizer"]["state"][0], "exp_avg": torch.zeros(2)}}}},
     ["optimizer.state[0]['exp_avg'] does not fit"]),
    ("resume-bad-scheduler", lambda s: {**s, "scheduler": {**s["scheduler"], "optimizer": {}}},
     ["scheduler does not fit"]),
])
def test_resume_and_init_from_refuse_malformed_checkpoints(base, tmp_path, name, change, fragments):
    directory = craft(base, tmp_path, name, change)
    marker = tmp_path / "MARKER"
    before = (directory / "metrics.jsonl").read_bytes()
    assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, *fragments)
    assert (directory / "metrics.jsonl").read_bytes() == before  # refused before anything was written
    if "optimizer" not in fragments[0] and "scheduler" not in fragments[0]:  # init-from reads only the network
        assert_refused(run("train", *TINY, "--out", tmp_path / "ft", "--init-from", directory), marker, *fragments)


def payload_model(tmp_path: Path, marker: Path) -> str:
    """A --model file that creates `marker` when imported."""
    path = tmp_path / "payload.py"
    path.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\n\ndef make():\n"
                    "    import torch\n    return torch.nn.Linear(1, 1)\n")
    return f"{path}:make"


def test_a_run_naming_a_model_file_never_imports_it_unasked(base, tmp_path):
    marker = tmp_path / "MARKER"
    model = payload_model(tmp_path, marker)

    def name_model(state):
        state["config"]["model"] = model
        state["sizes"] = [state["sizes"][0], state["sizes"][-1]]  # as a --model run records them
        return state
    directory = craft(base, tmp_path, "payload-model", name_model)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model": model}))
    opened_by_every_command(directory, tmp_path, marker, f"trained with --model {model}",
                            f"pass --model {model} to confirm")
    (tmp_path / "other").mkdir()
    other = payload_model(tmp_path / "other", tmp_path / "MARKER2")
    assert_refused(run("train", "--out", directory, "--resume", "--model", other, "--quiet"), marker,
                   f"pass --model {model}")
    assert not (tmp_path / "MARKER2").exists()
    # naming the model is the user's consent: the file is imported (and its module does not fit this run)
    result = run("eval", directory, "--model", model)
    assert result.exit_code == 2 and marker.exists(), result.output
    assert "params holds 4 tensors, the network its config builds has 2" in result.output


def test_resume_with_broken_config_json(base, tmp_path):
    marker = tmp_path / "MARKER"
    directory = craft(base, tmp_path, "config-json-torn")
    (directory / "config.json").write_text('{"dataset": "digits", "hidd')
    assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, "config.json is not valid JSON")
    directory = craft(base, tmp_path, "config-json-list")
    (directory / "config.json").write_text("[1, 2]")
    assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, "not a dict of settings")
    directory = craft(base, tmp_path, "config-json-binary")
    (directory / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, "config.json is not valid JSON")
    directory = craft(base, tmp_path, "config-json-deep")
    (directory / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_refused(run("train", "--out", directory, "--resume", "--quiet"), marker, "config.json")
    evaluated = run("eval", directory)  # eval opens the checkpoint, whose own config is intact
    assert "Traceback" not in evaluated.output and not isinstance(evaluated.exception, RecursionError)


def test_resume_with_a_damaged_metrics_line(base, tmp_path):
    directory = craft(base, tmp_path, "metrics-damaged-middle")
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    lines[1] = "{garbage"
    (directory / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert_refused(run("train", "--out", directory, "--resume", "--generations", "6", "--quiet"),
                   tmp_path / "MARKER", "metrics.jsonl line 2 is not a metrics record")
    directory = craft(base, tmp_path, "metrics-deep-nesting")
    lines[1] = "[" * 100_000 + "]" * 100_000
    (directory / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert_refused(run("train", "--out", directory, "--resume", "--generations", "6", "--quiet"),
                   tmp_path / "MARKER", "metrics.jsonl line 2 is not a metrics record")

