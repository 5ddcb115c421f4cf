"""Property tests (Hypothesis) of the input parsers: whatever a config, an option or a recording
holds, only a SpikerollError (a one-line message) ever escapes, and nothing hangs.

Sized to run in well under 20 s: no example trains (options that pass the checks stop before
training, see test_cli_options_exit_0_or_2).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

hypothesis = pytest.importorskip("hypothesis")  # the dev extra
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spikeroll.cli import build_config, main  # noqa: E402
from spikeroll.config import TrainConfig  # noqa: E402
from spikeroll.data.events import EVENT_DTYPE  # noqa: E402
from spikeroll.data.nmnist import Problems, read_files  # noqa: E402
from spikeroll.data.nmnist_format import decode, read_nmnist_bin, write_nmnist_bin  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**80, max_value=2**80)
           | st.sampled_from([2**64, 2**63, -(2**63) - 1])  # at the 64-bit edges
           | st.integers(0, 3).map(lambda k: (-1) ** k * 10 ** (4400 + k))  # past Python's int-to-text limit
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["auto", "cpu", "cuda:0", "digits", "nmnist", "eggroll", "openes", "egg", "bptt",
                              "loihi", "lif", "zero", "spikes", "adam", "128,64", "nan", "1e999", ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                          max_size=3), max_leaves=6)


def only_spikeroll_errors(build):
    """build() returns or raises SpikerollError with a one-line message; anything else fails the test."""
    try:
        return build()
    except SpikerollError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return None


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
def test_config_from_any_values_raises_only_spikeroll_errors(settings_dict):
    cfg = only_spikeroll_errors(lambda: TrainConfig.from_dict(settings_dict).validate())
    if cfg is not None:  # what passes is what a run can use
        assert all(math.isfinite(v) for v in vars(cfg).values() if isinstance(v, float))
        assert cfg.population % 2 == 0 and cfg.population >= 2 and all(h >= 1 for h in cfg.hidden)


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), st.integers(-3, 70) | st.floats(-2, 2) | st.sampled_from(
    [0.5, 0.9, 1e-3, 8, 16, 64]), max_size=8))
def test_config_from_plausible_numbers_raises_only_spikeroll_errors(settings_dict):
    only_spikeroll_errors(lambda: TrainConfig.from_dict(settings_dict).validate())


@FAST
@given(values)
def test_config_that_is_not_a_table(value):
    only_spikeroll_errors(lambda: TrainConfig.from_dict(value))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200) | st.sampled_from(['{"population": NaN}', "population = nan", "[1]", "{}",
                                                     'hidden = ["a"]', "population = 8.5", "seed = 1979-05-27"]),
       suffix=st.sampled_from([".toml", ".json"]))
def test_config_files_of_any_text(folder, text, suffix):
    path = folder / f"fuzz{suffix}"
    path.write_text(text)
    only_spikeroll_errors(lambda: TrainConfig.from_file(path).validate())


NUMERIC_OPTIONS = {"population": int, "generations": int, "batch_size": int, "time_bins": int, "augment_shift": int,
                   "chunk_pairs": int, "pool": int, "rank": int, "seed": int, "sigma": float, "lr": float,
                   "threshold": float, "beta": float, "temperature": float, "momentum": float, "weight_decay": float}


@FAST
@given(st.dictionaries(st.sampled_from(sorted(NUMERIC_OPTIONS)),
                       st.integers(-10, 2**70) | st.floats(allow_nan=True, allow_infinity=True), max_size=5))
def test_build_config_with_any_numeric_options(overrides):
    typed = {k: NUMERIC_OPTIONS[k](v) if NUMERIC_OPTIONS[k] is float or not isinstance(v, float) else v
             for k, v in overrides.items()}
    only_spikeroll_errors(lambda: build_config(None, None, typed))


option_text = (st.integers(-2**70, 2**70).map(str) | st.floats(allow_nan=True, allow_infinity=True).map(repr)
               | st.sampled_from(["nan", "inf", "-inf", "1e400", "abc", "", "0x10", "1_000", " 8", "8.5"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(NUMERIC_OPTIONS)), option_text), max_size=4))
def test_cli_options_exit_2_never_a_traceback(folder, options):
    """--generations 0 fails validation, so no example trains: exit code 2 (0 would mean a run) and an
    error line, never a traceback."""
    args = ["train", "--generations", "0", "--out", str(folder / "run"), "--quiet"]
    for name, value in options:
        if name != "generations":
            args += [f"--{name.replace('_', '-')}", value]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (args, result.output)
    assert "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")], result.output


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.lists(st.binary(min_size=5, max_size=5), max_size=60).map(b"".join))
def test_nmnist_reader_on_random_bytes(folder, raw):
    path = folder / "random.bin"
    path.write_bytes(raw)
    for read in (lambda: read_nmnist_bin(path), lambda: decode(raw, "raw")):
        events = only_spikeroll_errors(read)
        if events is not None:
            assert events.dtype == EVENT_DTYPE and np.all(np.diff(events["t"]) >= 0)
            assert events["x"].max() < 34 and events["y"].max() < 34 and set(np.unique(events["p"])) <= {0, 1}
    problems = Problems(strict=False)
    with warnings.catch_warnings():  # the bulk reader skips bad files with a warning (checked via problems)
        warnings.simplefilter("ignore")
        ev, fid, ok = read_files([path], problems)  # never raises
    assert len(ok) == 1 and (ok[0] or problems.items) and len(ev) == len(fid)


coordinate = st.integers(0, 33) | st.integers(0, 255)
events_strategy = st.integers(0, 40).flatmap(lambda n: st.tuples(
    st.lists(coordinate, min_size=n, max_size=n), st.lists(coordinate, min_size=n, max_size=n),
    st.lists(st.integers(0, 1) | st.integers(0, 255), min_size=n, max_size=n),
    st.lists(st.integers(0, 2**40) | st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n),
    st.booleans()))


@settings(max_examples=150, deadline=None)
@given(events_strategy)
def test_nmnist_writer_and_reader_on_random_events(folder, spec):
    x, y, p, t, sort = spec
    events = np.empty(len(t), EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    if sort:
        events = events[np.argsort(events["t"], kind="stable")]
    path = folder / "events.bin"
    written = only_spikeroll_errors(lambda: write_nmnist_bin(path, events) or True)
    if written is None:
        return
    back = only_spikeroll_errors(lambda: read_nmnist_bin(path))
    if len(events) == 0:
        assert back is None  # an empty recording is refused on reading
    else:
        np.testing.assert_array_equal(back, events)  # what could be written reads back exactly


def test_json_round_trip_of_a_valid_config_keeps_every_value():
    cfg = TrainConfig(hidden=[16, 8], population=64, sigma=0.1, chunk_pairs=4, device="cpu").validate()
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).validate()
    assert again == cfg


field_values = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2**70, 2**70) | st.text(max_size=5)
                | st.none() | st.booleans()
                | st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 40), max_size=4)
                | st.lists(st.lists(st.floats(-10, 10), min_size=2, max_size=2), max_size=3)
                | st.dictionaries(st.sampled_from(["input", "output", "x"]), st.lists(st.integers(-2, 40), max_size=3),
                                  max_size=2))
META_KEYS = ["dt", "beta", "threshold", "reset", "producer", "time_bins", "dataset", "val_ids", "readout", "pool"]


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["input", "affine0", "lif0", "affine1", "li1", "output"]),
                          st.sampled_from(["weight", "bias", "tau", "r", "v_leak", "v_threshold", "v_reset",
                                           "input_type", "metadata"]), field_values), max_size=3),
       st.dictionaries(st.sampled_from(META_KEYS), field_values, max_size=3))
def test_nir_import_of_any_field_values(changes, metadata):
    """A graph whose node fields and metadata hold anything imports, or is one SpikerollError."""
    pytest.importorskip("nir")
    from spikeroll.interop.nir import export_graph, import_graph, network_config
    from spikeroll.nets.model import SpikingNet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_graph(SpikingNet([8, 4, 3], reset="zero", seed=0), (8,),
                             metadata={"dataset": "digits", "time_bins": 4})
    for node, field_name, value in changes:
        if field_name in vars(graph.nodes[node]):  # only fields the node type has
            vars(graph.nodes[node])[field_name] = np.asarray(value) if isinstance(value, list) else value
    graph.metadata.update(metadata)
    imported = only_spikeroll_errors(lambda: import_graph(graph))
    if imported is not None:
        only_spikeroll_errors(lambda: network_config(TrainConfig(), imported))
