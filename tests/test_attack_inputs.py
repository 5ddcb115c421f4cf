"""Crafted inputs at every trust boundary: config files (TOML, JSON), command-line options, --model
files, NIR graphs and N-MNIST folders. Each must end in one `error:` line with exit code 2 from
the CLI (never a traceback), and validating a config must never import the module it names.

CRAFTED_INPUTS records every input tried; the last test prints how many.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spikeroll.cli import main
from spikeroll.config import MAX_TIME_BINS, SENSOR_PIXELS, TrainConfig
from spikeroll.data.events import RECORDING_US, SENSOR
from spikeroll.errors import SpikerollError

CRAFTED_INPUTS: list[str] = []

# a small, fast run: anything that gets past validation stops early or trains 8 members briefly
SMALL = ["--hidden", "8", "--population", "8", "--batch-size", "8", "--time-bins", "2", "--quiet"]


def small_except(text: str) -> list[str]:
    """SMALL without the options a crafted config file sets (typed options would override the file)."""
    pairs = [SMALL[i:i + 2] for i in range(0, len(SMALL) - 1, 2)]
    return [x for flag, value in pairs if flag[2:].replace("-", "_") not in text for x in (flag, value)] + ["--quiet"]


def refused(args, what: str, *, warnings_allowed: bool = False) -> str:
    """Run the CLI on crafted `args`; assert exit code 2 and one `error:` line; return that line."""
    CRAFTED_INPUTS.append(what)
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, f"{what}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output, f"{what}: {result.output}"
    assert isinstance(result.exception, SystemExit), f"{what}: {result.exception!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"{what}: {result.stderr}"
    if not warnings_allowed:
        assert lines == errors, f"{what}: more than the one error line: {result.stderr}"
    return errors[0]


def test_the_config_bounds_repeat_the_data_constants():
    assert SENSOR_PIXELS == SENSOR and MAX_TIME_BINS == RECORDING_US


# config files ------------------------------------------------------------------------------------

TOML_CASES = {
    # wrong types
    "hidden-strings": ('hidden = ["a"]', "hidden"),
    "hidden-bool": ("hidden = true", "hidden"),
    "hidden-table": ("hidden = {a = 1}", "hidden"),
    "generations-string": ('generations = "2"', "generations"),
    "population-string": ('population = "8"', "population"),
    "population-float": ("population = 8.5", "population"),
    "population-bool": ("population = true", "population"),
    "population-array": ("population = [8]", "population"),
    "time-bins-float": ("time_bins = 2.0", "time_bins"),
    "ptq-int": ("ptq = 1", "ptq"),
    "sigma-string": ('sigma = "0.05"', "sigma"),
    "device-int": ("device = 3", "device"),
    "dataset-int": ("dataset = 5", "dataset"),
    "model-int": ("model = 5", "model"),
    "strategy-array": ('strategy = ["eggroll"]', "strategy"),
    "lr-table": ("lr = {x = 1}", "lr"),
    "seed-date": ("seed = 1979-05-27", "seed"),
    "chunk-pairs-string": ('chunk_pairs = "64"', "chunk_pairs"),
    # not finite
    "threshold-nan": ("threshold = nan", "threshold"),
    "init-gain-inf": ("init_gain = inf", "init_gain"),
    "temperature-inf": ("temperature = inf", "temperature"),
    "weight-decay-nan": ("weight_decay = nan", "weight_decay"),
    "beta-nan": ("beta = nan", "beta"),
    "sigma-inf": ("sigma = inf", "sigma"),
    "sigma-final-nan": ("sigma_final = nan", "sigma_final"),
    "lr-minus-inf": ("lr = -inf", "lr"),
    "momentum-nan": ("momentum = nan", "momentum"),
    "egg-z-inf": ("egg_z = inf", "egg_z"),
    "val-fraction-nan": ("val_fraction = nan", "val_fraction"),
    "augment-drop-nan": ("augment_drop = nan", "augment_drop"),
    "worker-timeout-inf": ("worker_timeout = inf", "worker_timeout"),
    "gpus-per-worker-nan": ("gpus_per_worker = nan", "gpus_per_worker"),
    # out of range
    "augment-shift-huge": ("augment_shift = 100000", "augment_shift"),
    "augment-shift-negative": ("augment_shift = -1", "augment_shift"),
    "chunk-pairs-zero": ("chunk_pairs = 0", "chunk_pairs"),
    "device-bogus": ('device = "bogus"', "device"),
    "device-cuda-letters": ('device = "cuda:x"', "device"),
    "time-bins-huge": ("time_bins = 1000000000", "time_bins"),
    "pool-huge": ("pool = 1000000", "pool"),
    "generations-negative": ("generations = -1", "generations"),
    "batch-size-zero": ("batch_size = 0", "batch_size"),
    "population-odd": ("population = 7", "population"),
    "population-zero": ("population = 0", "population"),
    "beta-above-one": ("beta = 1.5", "beta"),
    "threshold-zero": ("threshold = 0.0", "threshold"),
    "init-gain-negative": ("init_gain = -1.0", "init_gain"),
    "weight-decay-negative": ("weight_decay = -0.1", "weight_decay"),
    "hidden-zero": ("hidden = [0]", "hidden"),
    "hidden-empty": ("hidden = []", "hidden"),
    "dataset-unknown": ('dataset = "../../etc/passwd"', "dataset"),
    "unknown-key": ("popluation = 8", "popluation"),
    "unknown-key-newline": ('"a\\nb" = 1', "unknown setting"),
    "not-toml": ("population = = 8", "not valid JSON/TOML"),
}


@pytest.mark.parametrize("name", sorted(TOML_CASES))
def test_crafted_toml_configs_are_one_line_errors(tmp_path, name):
    text, named = TOML_CASES[name]
    path = tmp_path / "crafted.toml"
    path.write_text(text + "\n")
    line = refused(["train", "--config", path, "--out", tmp_path / "run", *small_except(text)], f"toml {name}: {text}")
    assert named in line


JSON_CASES = {
    "list": "[1, 2]",
    "string": '"population"',
    "number": "3",
    "null": "null",
    "nan": '{"threshold": NaN}',
    "infinity": '{"sigma": Infinity}',
    "overflow-float": '{"lr": 1e999}',
    "huge-int-seed": json.dumps({"seed": 2**70}),
    "huge-int-float-field": json.dumps({"sigma": 10**400}),
    "population-float": '{"population": 8.5}',
    "hidden-nested": '{"hidden": [[1]]}',
    "hidden-mixed": '{"hidden": [8, "x"]}',
    "hidden-string-garbage": '{"hidden": "8,a"}',
    "hidden-huge-string": json.dumps({"hidden": "9" * 5000}),
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "truncated": '{"population": ',
    "val-ids-int": '{"val_ids": 801}',
    "workers-string": '{"workers": "2"}',
    "threads-negative": '{"threads_per_worker": 0}',
    "device-cuda-negative": '{"device": "cuda:-1"}',
    "ray-address-list": '{"ray_address": ["auto"]}',
}


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_crafted_json_configs_are_one_line_errors(tmp_path, name):
    path = tmp_path / "crafted.json"
    path.write_text(JSON_CASES[name])
    refused(["train", "--config", path, "--out", tmp_path / "run", *small_except(JSON_CASES[name])], f"json {name}")


def test_a_config_file_that_is_not_text_or_not_a_file(tmp_path):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    refused(["train", "--config", binary, "--out", tmp_path / "run"], "json invalid UTF-8")
    refused(["train", "--config", tmp_path, "--out", tmp_path / "run"], "config path is a folder")
    refused(["train", "--config", tmp_path / "nope.toml", "--out", tmp_path / "run"], "config path missing")


@pytest.mark.parametrize("values", [{"hidden": 10**5000}, {"population": 10**5000}, {"sigma": -(10**5000)},
                                    {"hidden": [10**5000]}, {"time_bins": 2**64}, {"seed": -(2**64)},
                                    {"hidden": [[[[[]]]]]}, {"hidden": 5.5}, {10**5000: 1}],
                         ids=lambda v: _show_key(v))
def test_huge_numbers_through_the_python_api_are_one_line_errors(values):
    CRAFTED_INPUTS.append(f"from_dict {_show_key(values)}")
    with pytest.raises(SpikerollError) as info:
        TrainConfig.from_dict(values).validate()
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def _show_key(values: dict) -> str:
    (key, value), = values.items()
    return f"{key if isinstance(key, str) else 'key-' + type(key).__name__}={type(value).__name__}"


def test_population_of_the_wrong_type_suggests_no_float():
    with pytest.raises(SpikerollError) as info:
        TrainConfig.from_dict({"population": 8.5}).validate()
    message = str(info.value)
    CRAFTED_INPUTS.append("from_dict population 8.5")
    assert "population" in message and "whole number" in message and "9.0" not in message and "\n" not in message


# the module a config names is never imported by validation ------------------------------------------

PAYLOAD = '''from pathlib import Path
Path({marker!r}).write_text("imported")


def make():
    raise SystemExit("payload factory called")
'''


@pytest.fixture
def payload(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "payload.py"
    path.write_text(PAYLOAD.format(marker=str(marker)))
    return f"{path}:make", marker


def test_validation_never_imports_the_model(tmp_path, payload):
    spec, marker = payload
    TrainConfig.from_dict({"model": spec}).validate()  # a valid config: checked, nothing imported
    CRAFTED_INPUTS.append("from_dict payload model, valid")
    assert not marker.exists()
    cases = {
        "toml": ("crafted.toml", f'model = "{spec}"\npopulation = nan\n'),
        "toml-pool": ("crafted.toml", f'model = "{spec}"\npool = 2\n'),
        "json-type": ("crafted.json", json.dumps({"model": spec, "hidden": ["a"]})),
        "json-memory-type": ("crafted.json", json.dumps({"model": spec, "population": "1000000000"})),
    }
    for name, (file, text) in cases.items():
        path = tmp_path / file
        path.write_text(text)
        refused(["train", "--config", path, "--out", tmp_path / "run", *small_except(text)], f"payload model {name}")
        assert not marker.exists(), name
    refused(["train", "--model", spec, "--generations", "0", "--out", tmp_path / "run", *SMALL],
            "payload model, --generations 0")
    refused(["train", "--model", spec, "--device", "bogus", "--out", tmp_path / "run", *SMALL],
            "payload model, --device bogus")
    assert not marker.exists()


# command-line options ---------------------------------------------------------------------------------

OPTION_CASES = [
    ["--augment-shift", "100000"], ["--augment-shift", "34"], ["--device", "bogus"], ["--device", "cuda:x"],
    ["--device", "cuda:99"], ["--chunk-pairs", "0"], ["--chunk-pairs", "-5"], ["--threshold", "nan"],
    ["--init-gain", "inf"], ["--temperature", "inf"], ["--weight-decay", "nan"], ["--beta", "nan"],
    ["--sigma", "-inf"], ["--sigma-final", "nan"], ["--lr", "nan"], ["--momentum", "inf"], ["--egg-z", "nan"],
    ["--val-fraction", "inf"], ["--augment-drop", "nan"], ["--worker-timeout", "inf"], ["--gpus-per-worker", "nan"],
    ["--population", "7"], ["--population", "abc"], ["--population", "8.5"], ["--hidden", "a"], ["--hidden", "0"],
    ["--hidden", ","], ["--time-bins", "0"], ["--time-bins", "1000000000"], ["--pool", "0"], ["--pool", "99"],
    ["--generations", "0"], ["--batch-size", "-1"], ["--seed", str(2**70)], ["--rank", "0"], ["--rank", "100000"],
    ["--workers", "-1"], ["--workers", "1000000"], ["--weight-bits", "3", "--neuron", "loihi"], ["--dataset", "bogus"],
]


@pytest.mark.parametrize("option", OPTION_CASES, ids=lambda o: " ".join(o))
def test_crafted_options_are_one_line_errors(tmp_path, option):
    refused(["train", *SMALL, *option, "--generations" if "--generations" not in option else "--seed", "1",
             "--out", tmp_path / "run"], "option " + " ".join(option))


MEMORY_CASES = [["--population", "1000000000"], ["--population", "200000000", "--strategy", "openes"],
                ["--population", "100000000", "--chunk-pairs", "50000000"], ["--hidden", "1000000000"],
                ["--hidden", "100000,100000,100000"], ["--time-bins", "300000"]]


@pytest.mark.parametrize("option", MEMORY_CASES, ids=lambda o: " ".join(o))
def test_what_cannot_fit_in_memory_is_refused_with_its_size(tmp_path, option):
    line = refused(["train", *SMALL, *option, "--generations", "1", "--out", tmp_path / "run"],
                   "memory " + " ".join(option))
    assert "bytes" in line and any(flag in line for flag in ("--population", "--hidden", "--time-bins"))


def test_a_module_population_that_cannot_fit_is_refused(tmp_path):
    pytest.importorskip("snntorch")
    example = Path(__file__).resolve().parents[1] / "examples" / "snntorch_csnn.py"
    line = refused(["train", "--model", f"{example}:make_csnn", "--population", "1000000000", "--generations", "1",
                    "--quiet", "--out", tmp_path / "run"], "memory --model population 1000000000")
    assert "bytes" in line and "--population" in line


# --model files that raise ---------------------------------------------------------------------------------

MODEL_FILES = {
    "raises-on-import": ("import math\n\nx = math.sqrt(4)\nraise RuntimeError('broken on import')\n", 4),
    "factory-raises": ("def helper():\n    return {}['missing']\n\n\ndef make():\n    return helper()\n", 2),
    "syntax-error": ("def make(:\n    pass\n", 1),
    "exits-on-import": ("import sys\nsys.exit(7)\n", 2),
    "factory-returns-int": ("def make():\n    return 3\n", None),
    "no-factory": ("x = 1\n", None),
}


@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_model_files_that_raise_are_one_line_errors_naming_the_line(tmp_path, name):
    text, line_number = MODEL_FILES[name]
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(text)
    line = refused(["train", "--model", f"{path}:make", *SMALL, "--generations", "1", "--out", tmp_path / "run"],
                   f"--model {name}")
    assert str(path) in line
    if line_number is not None:
        assert f"{path}:{line_number}:" in line


def test_model_specs_that_name_no_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for spec in ["nocolon", f"{tmp_path}/missing.py:make", f"{tmp_path}/notes.txt:make", ":make", "a.py:"]:
        refused(["train", "--model", spec, *SMALL, "--generations", "1", "--out", tmp_path / "run"], f"--model {spec}")


# NIR graphs ----------------------------------------------------------------------------------------------------

nir = pytest.importorskip("nir")


def crafted_graph(tmp_path, name, change) -> Path:
    """A graph spikeroll exported (8 inputs, 4 hidden, 3 outputs), changed by `change(graph)`, written."""
    from spikeroll.interop.nir import export_graph
    from spikeroll.nets.model import SpikingNet

    graph = export_graph(SpikingNet([8, 4, 3], reset="zero", seed=0), (8,),
                         metadata={"dataset": "digits", "time_bins": 4})
    change(graph)
    path = tmp_path / f"{name}.nir"
    nir.write(path, graph)
    return path


def setter(node, field, value):
    def change(graph):
        array = np.array(vars(graph.nodes[node])[field], dtype=np.float64)  # the node's field, as written
        array.flat[0] = value
        setattr(graph.nodes[node], field, array)
    return change


def meta(key, value):
    def change(graph):
        graph.metadata[key] = value
    return change


NIR_CASES = {
    "weight-nan": (setter("affine0", "weight", np.nan), "'affine0'"),
    "weight-inf": (setter("affine1", "weight", np.inf), "'affine1'"),
    "weight-beyond-float32": (setter("affine0", "weight", 1e300), "'affine0'"),
    "bias-beyond-float32": (setter("affine1", "bias", -1e39), "'affine1'"),
    "tau-below-dt": (setter("lif0", "tau", 1e-300), "'lif0'"),
    "bias-nan": (setter("affine0", "bias", np.nan), "'affine0'"),
    "threshold-inf": (setter("lif0", "v_threshold", np.inf), "'lif0'"),
    "threshold-nan": (setter("lif0", "v_threshold", np.nan), "'lif0'"),
    "tau-nan": (setter("lif0", "tau", np.nan), "'lif0'"),
    "tau-inf": (setter("li1", "tau", np.inf), "'li1'"),
    "r-nan": (setter("li1", "r", np.nan), "'li1'"),
    "v-leak-inf": (setter("lif0", "v_leak", -np.inf), "'lif0'"),
    "v-reset-nan": (setter("lif0", "v_reset", np.nan), "'lif0'"),
    "dt-string": (meta("dt", "abc"), "dt"),
    "dt-nan": (meta("dt", float("nan")), "dt"),
    "dt-negative": (meta("dt", -1e-4), "dt"),
    "dt-zero": (meta("dt", 0.0), "dt"),
    "beta-string": (meta("beta", "abc"), "beta"),
    "threshold-meta-string": (meta("threshold", "x"), "threshold"),
    "time-bins-string": (meta("time_bins", "abc"), "time_bins"),
    "time-bins-float": (meta("time_bins", 2.5), "time_bins"),
    "time-bins-zero": (meta("time_bins", 0), "time_bins"),
    "time-bins-huge": (meta("time_bins", 10**12), "time_bins"),
    "dataset-int": (meta("dataset", 5), "dataset"),
    "dataset-unknown": (meta("dataset", "bogus"), "dataset"),
    "val-ids-int": (meta("val_ids", 801), "val_ids"),
}


@pytest.mark.parametrize("name", sorted(NIR_CASES))
def test_crafted_nir_graphs_are_one_line_errors(tmp_path, name):
    change, named = NIR_CASES[name]
    path = crafted_graph(tmp_path, name, change)
    line = refused(["eval", path], f"nir eval {name}")
    assert named in line


@pytest.mark.parametrize("name", ["weight-nan", "dt-string", "time-bins-float"])
def test_crafted_nir_graphs_refused_by_train_init_from(tmp_path, name):
    change, named = NIR_CASES[name]
    path = crafted_graph(tmp_path, name, change)
    line = refused(["train", "--init-from", path, *SMALL, "--generations", "1", "--out", tmp_path / "run"],
                   f"nir init-from {name}")
    assert named in line


def test_nir_files_that_are_not_graphs(tmp_path):
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.nir"
    noise.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.nir"
    empty.write_bytes(b"")
    for path in (noise, empty, tmp_path / "missing.nir"):
        refused(["eval", path], f"nir file {path.name}")


def test_nir_graph_objects_with_nan_are_refused_by_the_snntorch_reader():
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from spikeroll.interop.nir import export_graph
    from spikeroll.interop.readers import to_snntorch
    from spikeroll.nets.model import SpikingNet

    graph = export_graph(SpikingNet([8, 4, 3], reset="zero", seed=0), (8,))
    graph.nodes["affine1"].bias[1] = np.nan
    CRAFTED_INPUTS.append("to_snntorch bias nan")
    with pytest.raises(SpikerollError, match="'affine1'.*bias"):
        to_snntorch(graph)


# N-MNIST folders ---------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:skipping")
def test_an_nmnist_folder_of_corrupt_recordings_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEROLL_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    sizes = {"truncated": 23, "off-sensor": 50, "empty": 0}
    for kind, size in sizes.items():
        root = tmp_path / kind
        for label in range(3):
            folder = root / "Train" / str(label)
            folder.mkdir(parents=True)
            raw = rng.integers(0, 256, size, dtype=np.uint8)
            if kind == "off-sensor":
                raw.reshape(-1, 5)[:, 0] = 200  # x beyond the 34-pixel sensor
            (folder / "00001.bin").write_bytes(raw.tobytes())
        line = refused(["train", "--dataset", "nmnist", "--data-dir", root, *SMALL, "--generations", "1",
                        "--out", tmp_path / "run"], f"nmnist folder {kind}", warnings_allowed=True)
        assert "corrupt" in line
    empty = tmp_path / "no-recordings" / "Train" / "0"
    empty.mkdir(parents=True)
    refused(["train", "--dataset", "nmnist", "--data-dir", empty.parent.parent, *SMALL, "--generations", "1",
             "--out", tmp_path / "run"], "nmnist folder without recordings", warnings_allowed=True)


def test_zz_count(capsys):
    """Last in the file: how many crafted inputs the suite tried (gathered by the test report)."""
    assert len(CRAFTED_INPUTS) >= 100
    with capsys.disabled():
        print(f"\nattack suite: {len(CRAFTED_INPUTS)} crafted inputs tried")
