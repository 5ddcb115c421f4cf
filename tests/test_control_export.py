"""Export of the integer (Loihi) control policy: `spikeroll export` (NIR) and `spikeroll export-loihi`
(JSON) of a short integer run, read back with the real `nir` package, against an independent
reference: the chip's input made from a raw observation by the metadata's numbers and rules alone,
then test_control_integer's loop-by-loop simulation in Python integers of the file's integers.
Readouts must equal the run's own mean policy bit for bit, and so must Discrete actions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("gymnasium")
nir = pytest.importorskip("nir")

from spikeroll.cli import main  # noqa: E402
from spikeroll.control.config import ControlConfig  # noqa: E402
from spikeroll.control.policy import quantise_observations  # noqa: E402
from spikeroll.control.trainer import folded_network, load_policy, train_control  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402

from test_control_integer import _tiny, loihi_forward  # noqa: E402

SHORT = dict(generations=1, population=2, max_episode_steps=10, eval_episodes=1)
INT8 = dict(SHORT, neuron="loihi", weight_bits=8, reset="zero", init_gain=3.0)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def graph_layers(graph) -> list[dict]:
    """The layers `loihi_forward` runs, from the graph's nodes alone (Affine weight = q)."""
    layers, i = [], 0
    while f"affine{i}" in graph.nodes:
        affine = graph.nodes[f"affine{i}"]
        a, m = affine.metadata, graph.nodes.get(f"lif{i}", graph.nodes.get(f"li{i}")).metadata
        assert affine.weight.dtype.kind == "i" and a["weight_exp"] == a["k"] + 14
        layers.append({"q": affine.weight.tolist(), "weight_exp": int(a["k"]) + 14, "du": int(m["du"]),
                       "dv": int(m["dv"]), "vth": int(m["vth"]),
                       "bias": [int(b) << int(m["bias_exp"]) for b in m["bias_mant"]]})
        i += 1
    return layers


def lava_layers(params: dict) -> list[dict]:
    """The same from export-loihi's JSON, in the form Lava loads (weights q << (9 − B), weight_exp lowered)."""
    return [{"q": layer["dense"]["weights"], "weight_exp": layer["dense"]["weight_exp"],
             **{key: layer["lif"][key] for key in ("du", "dv", "vth")},
             "bias": [b << layer["lif"]["bias_exp"] for b in layer["lif"]["bias_mant"]]}
            for layer in params["layers"]]


def chip_input(meta: dict, obs: np.ndarray) -> list[int]:
    """A raw observation -> graded spikes, by the metadata's numbers and its stated rule."""
    x = np.asarray(obs, np.float32)
    if meta["obs_norm"]:
        mean, std = np.asarray(meta["obs_mean"], np.float32), np.asarray(meta["obs_std"], np.float32)
        clip = np.float32(meta["obs_clip"])
        x = np.clip((x - mean) / std, -clip, clip)
    return [max(-127, min(127, round(float(v) * 2 ** int(meta["input_exponent"])))) for v in x]  # half to even


def action(meta: dict, readout: list[float]):
    """The metadata's action rule: argmax + start (Discrete), or tanh scaled to [low, high] (Box)."""
    if "action_start" in meta:
        return int(meta["action_start"]) + readout.index(max(readout))
    low, high = np.asarray(meta["action_low"], np.float32), np.asarray(meta["action_high"], np.float32)
    return low + (np.tanh(np.float32(readout)) + np.float32(1)) * np.float32(0.5) * (high - low)


def from_file(layers: list[dict], meta: dict, observations: np.ndarray):
    """Readouts, actions and the hidden spike count of every observation, from the file alone."""
    T = int(meta["time_bins"])
    readouts, actions, spikes = [], [], 0
    for obs in observations:
        voltage, n = loihi_forward(layers, chip_input(meta, obs), T)
        readout = [float(np.float32(v / (T * 2**20))) for v in voltage]
        readouts.append(readout)
        actions.append(action(meta, readout))
        spikes += n
    return np.asarray(readouts, np.float32), np.asarray(actions), spikes


def policy_outputs(run_dir, observations: np.ndarray):
    """The run's own mean policy (noise None) on raw observations: readouts, actions and the graded
    spikes `IntegerPolicy.outputs` sends."""
    _, policy, stats = load_policy(run_dir)
    x = stats.normalise(observations)
    out = policy.outputs(x[None])[0]
    return out.numpy(), policy.actions(out), quantise_observations(x, policy.exponent).tolist()


def observations(meta: dict, n_obs: int, count: int = 32, seed: int = 0) -> np.ndarray:
    """Random raw observations around the run's statistics (or ±9 without them), wide enough that
    some are clipped to ±obs_clip (or clamped to ±127)."""
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(meta.get("obs_mean", 0.0)), np.asarray(meta.get("obs_std", 3.0))
    return (mean + std * rng.normal(0.0, 3.0, (count, n_obs))).astype(np.float32)


@pytest.mark.parametrize("obs_norm", [True, False])
def test_integer_cartpole_export_runs_as_the_policy(tmp_path, obs_norm):
    out = tmp_path / "int8"
    train_control(_tiny(**INT8, obs_norm=obs_norm), out, progress=False)
    result = run("export", str(out))
    assert result.exit_code == 0, result.output
    graph = nir.read(out / "network.nir")  # type checking on
    meta = graph.metadata
    assert meta["env"] == "CartPole-v1" and meta["time_bins"] == 8 and bool(meta["obs_norm"]) == obs_norm
    assert meta["input_exponent"] == 4 and meta["action_start"] == 0 and meta["weight_bits"] == 8
    assert meta["conventions.input"] == meta["input_encoding"] and ("obs_mean" in meta) == obs_norm
    assert tuple(graph.nodes["input"].input_type["input"]) == (4,)

    many = observations(meta, 4, count=2000, seed=1)  # the input rule alone, on many observations
    graded = [chip_input(meta, o) for o in many]
    assert graded == policy_outputs(out, many)[2]
    edge = 2 ** meta["input_exponent"] * meta["obs_clip"] if obs_norm else 127
    assert any(edge in np.abs(g) for g in graded)  # the clip (or the int8 clamp) was exercised

    obs = observations(meta, 4)
    readouts, actions, spikes = from_file(graph_layers(graph), meta, obs)
    assert spikes > 0 and len(set(actions.tolist())) == 2  # the hidden layer spiked; both actions occur
    want_readouts, want_actions, _ = policy_outputs(out, obs)
    np.testing.assert_array_equal(readouts, want_readouts)
    np.testing.assert_array_equal(actions, want_actions)

    # export-loihi: the same integers and metadata in the JSON, run in the form Lava loads
    assert run("export-loihi", str(out)).exit_code == 0
    params = json.loads((out / "loihi.json").read_text())
    for key in ("env", "time_bins", "obs_norm", "obs_mean", "obs_std", "obs_clip", "input_exponent",
                "action_start"):
        assert (key in params) == (key in meta)
        if key in meta:
            np.testing.assert_array_equal(params[key], meta[key])
    assert params["conventions"]["input"] == meta["conventions.input"]
    lava_readouts, lava_actions, _ = from_file(lava_layers(params), params, obs)
    np.testing.assert_array_equal(lava_readouts, want_readouts)
    np.testing.assert_array_equal(lava_actions, want_actions)
    assert run("export-loihi", str(out), "--out", str(tmp_path / "p.npz")).exit_code == 0
    with np.load(tmp_path / "p.npz") as npz:  # .npz: the metadata in the JSON string under "meta"
        assert json.loads(str(npz["meta"]))["env"] == "CartPole-v1"
        assert json.loads(str(npz["meta"])).get("obs_mean") == params.get("obs_mean")


def test_integer_box_export_scales_the_readout(tmp_path):
    cfg = ControlConfig(env="Pendulum-v1", hidden=[6], time_bins=4, eval_every=1, val_episodes=1,
                        checkpoint_every=1, **INT8).validate()
    train_control(cfg, tmp_path / "pend", progress=False)
    assert run("export", str(tmp_path / "pend")).exit_code == 0
    graph = nir.read(tmp_path / "pend" / "network.nir")
    meta = graph.metadata
    assert meta["action_low"].tolist() == [-2.0] and meta["action_high"].tolist() == [2.0]
    obs = observations(meta, 3, seed=1)
    readouts, actions, spikes = from_file(graph_layers(graph), meta, obs)
    want_readouts, want_actions, _ = policy_outputs(tmp_path / "pend", obs)
    assert spikes > 0
    np.testing.assert_array_equal(readouts, want_readouts)
    # tanh is the one step that is not exact across libraries (NumPy's here, torch's in the policy)
    np.testing.assert_allclose(np.stack(actions), want_actions, rtol=1e-6, atol=1e-6)
    assert np.ptp(want_actions) > 0


def one_line_error(*args: str) -> str:
    result = run(*args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_export_errors_are_one_line_and_the_float_path_stays(tmp_path):
    float_run, int_run = tmp_path / "float", tmp_path / "int8"
    train_control(_tiny(**SHORT), float_run, progress=False)
    train_control(_tiny(**INT8), int_run, progress=False)
    assert "holds a float (neuron lif) policy" in one_line_error("export-loihi", str(float_run))
    empty = tmp_path / "empty"  # a control run's config without its checkpoint
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"env": "CartPole-v1"}))
    assert "holds no checkpoint.pt" in one_line_error("export", str(empty))
    assert "holds no checkpoint.pt" in one_line_error("export-loihi", str(empty))
    with pytest.raises(SpikerollError, match="cannot be folded into integer weights") as caught:
        folded_network(int_run)
    assert "\n" not in str(caught.value)
    # a float run still exports its folded network: first layer W/std, as folded_network gives it
    assert run("export", str(float_run)).exit_code == 0
    graph = nir.read(float_run / "network.nir")
    _, folded = folded_network(float_run)
    assert np.array_equal(graph.nodes["affine0"].weight, folded.params["layer0.weight"].numpy())
    assert "obs_mean" not in graph.metadata and graph.metadata["time_bins"] == 8
