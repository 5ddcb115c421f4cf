"""`spikeroll bench`: the JSON it documents, and one-line errors for bad arguments. No timing checks."""

import json
import os

import pytest
import torch
from click.testing import CliRunner

from spikeroll.cli import main
from spikeroll.tools import bench
from spikeroll.tools.bench import BenchConfig, frame_shape, full_rank_noise_bytes

# Small but not tiny: each case allocates a few MiB, well above RSS accounting granularity.
TINY = ["--hidden", "64", "--population", "16", "--batch-size", "8", "--time-bins", "4", "--input", "2000",
        "--repeats", "1", "--warmup", "1", "--threads", "1"]


@pytest.fixture
def in_process(monkeypatch):
    """Run the cases in this process (each fresh subprocess re-imports torch: seconds per case);
    the subprocess path itself is checked by test_case_runs_in_a_fresh_process."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(bench, "measure_case", lambda cfg, case, timeout=None: bench.run_case(cfg, case))
    yield
    torch.set_num_threads(threads)


def test_bench_json_has_documented_keys_and_positive_numbers(in_process):
    """`bench --json` prints one object: the config, seconds and peak bytes of each case, torch threads."""
    result = CliRunner().invoke(main, ["bench", "--json", *TINY])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)  # exactly one JSON object
    assert set(out) == {"config", "seconds", "peak_bytes", "torch_threads"}
    cases = {"eggroll", "openes", "inference"}
    assert set(out["seconds"]) == cases and set(out["peak_bytes"]) == cases
    assert all(isinstance(v, float) and v > 0 for v in out["seconds"].values())
    assert all(isinstance(v, int) and v > 0 for v in out["peak_bytes"].values())
    assert out["torch_threads"] == 1
    config = out["config"]
    assert (config["hidden"], config["population"], config["batch_size"], config["input"]) == ([64], 16, 8, 2000)
    assert config["full_rank_noise_bytes"] == 16 * (2000 * 64 + 64 * 10) * 4


def test_case_runs_in_a_fresh_process():
    """measure_case runs its case in another process, with the requested thread count."""
    cfg = BenchConfig(hidden=[64], population=16, batch_size=8, time_bins=4, input=2000, repeats=1, threads=1)
    result = bench.measure_case(cfg, "inference")
    assert result["pid"] != os.getpid()
    assert result["seconds"] > 0 and result["peak_bytes"] > 0 and result["torch_threads"] == 1


@pytest.mark.parametrize("args, message", [
    (["--population", "7"], "population=7 must be an even number"),
    (["--population", "0"], "population=0 must be an even number"),
    (["--rank", "11"], "rank=11 is out of range; it must be between 1 and 10"),
    (["--rank", "0"], "rank=0 is out of range"),
    (["--hidden", "4", "--rank", "5"], "between 1 and 4"),
    (["--hidden", "x"], "--hidden 'x' is not a comma-separated list"),
    (["--repeats", "0"], "repeats=0 must be >= 1"),
    (["--density", "2"], "density=2.0 must be in [0, 1]"),
])
def test_bad_arguments_give_one_line_error(args, message):
    """Each bad argument is a one-line usage error (exit 2) saying what to change."""
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_frame_shapes_and_noise_prediction():
    """N-MNIST-shaped frames for input 2312, flat ones otherwise; full-rank noise bytes as documented."""
    assert frame_shape(BenchConfig()) == (10, 2, 34, 34)
    assert frame_shape(BenchConfig(input=100, time_bins=4)) == (4, 100, 1, 1)
    assert full_rank_noise_bytes(BenchConfig()) == 512 * (2312 * 128 + 128 * 10) * 4


def test_synthetic_data_declares_classes_and_sensor_size():
    """The bench's random data says its classes and sensor size as tonic's N-MNIST does."""
    data = bench.synthetic_data(BenchConfig(batch_size=4))
    assert data.classes == 10 and data.sensor_size == (34, 34, 2)  # tonic's NMNIST.sensor_size
    flat = bench.synthetic_data(BenchConfig(input=100, time_bins=4, batch_size=4))
    assert flat.sensor_size == (1, 1, 100) and flat.train.frames.shape[1:] == (4, 100, 1, 1)


def test_bptt_case_is_measured_when_asked_for(in_process):
    """`--cases eggroll,bptt` measures exactly those two; the default set leaves BPTT out."""
    result = CliRunner().invoke(main, ["bench", "--json", "--cases", "eggroll,bptt", *TINY])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["seconds"]) == set(out["peak_bytes"]) == {"eggroll", "bptt"}
    assert all(v > 0 for v in out["seconds"].values())
    assert bench.DEFAULT_CASES == ("eggroll", "openes", "inference")


def test_unknown_bench_case_is_one_line():
    """A case that does not exist is a one-line usage error listing the ones that do."""
    result = CliRunner().invoke(main, ["bench", "--cases", "eggroll,adam"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--cases 'eggroll,adam' names no known case (adam)" in result.output
    assert len(result.output.strip().splitlines()) == 1
