"""NIR export of integer networks (--neuron loihi): the file's integers against an independent
quantisation of the checkpoint's latent weights, and a Loihi forward pass that reads only the file.

The references are test_integer's `ref_quantise` (written from quant.py's documented rule) and
`file_forward` below, a NumPy re-implementation of the conventions stated in the graph's metadata
(Lava's bit-accurate LIF and Dense); neither calls spikeroll's quantiser or kernel."""

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from spikeroll.api import export_run  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.interop.nir import export_integer_graph, write_graph  # noqa: E402
from spikeroll.training.rundir import load_checkpoint, load_trained  # noqa: E402
from spikeroll.training.trainer import Trainer  # noqa: E402

from test_integer import ref_quantise  # noqa: E402
from test_integer_training import int_config  # noqa: E402
from test_train import synthetic_data  # noqa: E402


def trunc_decay(x, keep):
    """sgn(x)·(|x·keep| >> 12): Loihi's decay, rounding toward zero."""
    return np.sign(x) * ((np.abs(x) * keep) >> 12)


def file_forward(graph, frames):
    """Logits of the integer network that the NIR graph describes, from the graph alone."""
    x = np.asarray(frames, np.int64)  # (B, T, C, H, W) event counts
    B, T = x.shape[:2]
    pool = next((n for n in graph.nodes.values() if isinstance(n, nir.SumPool2d)), None)
    if pool is not None:
        p = int(np.atleast_1d(pool.kernel_size)[0])
        x = x.reshape(B, T, x.shape[2], x.shape[3] // p, p, x.shape[4] // p, p).sum((4, 6))
    names = sorted(n for n in graph.nodes if n.startswith("affine"))
    S = T + len(names)
    inputs = np.zeros((S, B, int(np.prod(x.shape[2:]))), np.int64)
    inputs[:T] = x.reshape(B, T, -1).transpose(1, 0, 2)
    for i, name in enumerate(names):
        affine = graph.nodes[name]
        neuron = graph.nodes[f"lif{i}"] if f"lif{i}" in graph.nodes else graph.nodes[f"li{i}"]
        m = neuron.metadata
        q, e = affine.weight.astype(np.int64), int(affine.metadata["weight_exp"])
        acc = inputs @ q.T
        acc = acc << e if e >= 0 else acc >> -e  # >> on int64 floors, as Lava's
        a = np.zeros_like(acc)
        a[1:] = acc[:-1]  # one step of synaptic delay
        bias = np.asarray(m["bias_mant"], np.int64) << int(m["bias_exp"])
        u, v = np.zeros_like(a[0]), np.zeros_like(a[0])
        out = np.zeros_like(a)
        for t in range(S):
            u = trunc_decay(u, 4096 - (int(m["du"]) + 1)) + (a[t] << 6)
            u = np.where(u > 2**23, u - 2**24, np.where(u <= -(2**23), u + 2**24, u))
            v = np.clip(trunc_decay(v, 4096 - int(m["dv"])) + u + bias, -(2**23 - 1), 2**23 - 1)
            if int(m["spiking"]):
                out[t] = v > (int(m["vth"]) << 6)
                v = np.where(out[t] == 1, 0, v)
            else:
                out[t] = v
        inputs = out
    total = inputs.sum(0)
    return total.astype(np.float64) / (T * 2**20) if graph.metadata["readout"] == "membrane" else total


def train(tmp_path, bits, pool):
    data = synthetic_data()
    run = tmp_path / f"run{bits}-{pool}"
    Trainer(int_config(generations=2, weight_bits=bits, pool=pool), run, data).run(progress=False)
    return run, data


def check_integers(graph, run, bits, pool):
    """Every stored integer against the checkpoint's latent floats quantised by the reference rule."""
    params = [p.double().numpy() for p in load_checkpoint(run / "checkpoint.pt")["params"]]
    for i in range(len(params) // 2):
        w, b = params[2 * i] / (pool**2 if i == 0 else 1), params[2 * i + 1]
        q, k = ref_quantise(w, bits)
        affine, neuron = graph.nodes[f"affine{i}"], graph.nodes[f"lif{i}" if f"lif{i}" in graph.nodes else f"li{i}"]
        assert affine.weight.dtype.kind == "i"
        if affine.weight.shape == q.shape:
            assert np.array_equal(affine.weight, q)
        else:  # pool folded into the first layer: each pixel carries its block's integer weight
            C, H, W = 2, 4, 4
            blocks = q.reshape(-1, C, -(-H // pool), -(-W // pool))
            unfolded = blocks.repeat(pool, 2).repeat(pool, 3)[:, :, :H, :W].reshape(q.shape[0], -1)
            assert np.array_equal(affine.weight, unfolded)
        assert affine.metadata["k"] == k and affine.metadata["weight_exp"] == k + 14
        bias_v = b * 2**20
        bexp = next((e for e in range(8) if np.abs(bias_v).max() / 2**e <= 4095), 7)
        mant = np.clip(np.round(bias_v / 2**bexp), -4096, 4095).astype(np.int64)
        m = neuron.metadata
        assert np.array_equal(m["bias_mant"], mant) and m["bias_exp"] == bexp
        assert (m["du"], m["dv"], m["vth"]) == (4095, 410, 2**14)  # β = 0.9: dv = round(4096·0.1)
        # the float reader's network: weights q·2^k via the input gain r·dt/τ, threshold 1, β = 1 − dv/4096
        tau = np.asarray(neuron.tau)
        assert np.allclose(np.asarray(neuron.r) * 1e-4 / tau, 2.0**k, rtol=1e-12)
        assert np.allclose(1 - 1e-4 / tau, 1 - 410 / 4096, rtol=1e-12)
        assert np.array_equal(affine.bias * 2.0**k, mant * 2.0**bexp / 2**20)
        if isinstance(neuron, nir.LIF):
            assert np.all(np.asarray(neuron.v_threshold) == 1.0) and np.all(np.asarray(neuron.v_reset) == 0)


def test_integer_run_exports_its_integers_and_conventions(tmp_path):
    run, data = train(tmp_path, 8, 1)
    graph = nir.read(export_run(run))  # type checking on
    check_integers(graph, run, 8, 1)
    meta = graph.metadata
    assert meta["weight_bits"] == 8 and meta["format"] == "spikeroll-loihi/1"
    for key in ("threshold", "decay", "state", "weights", "time", "readout"):
        assert meta[f"conventions.{key}"]
    _, net = load_trained(run)
    frames = data.test.frames
    np.testing.assert_array_equal(file_forward(graph, frames).astype(np.float32), net.logits(frames).numpy())


@pytest.mark.parametrize("bits,pool", [(2, 2), (4, 3)])  # 2: a SumPool2d node; 3 does not tile 4x4: folded
def test_pooled_integer_networks_export_exactly(tmp_path, bits, pool):
    run, data = train(tmp_path, bits, pool)
    _, net = load_trained(run)
    graph = nir.read(write_graph(export_integer_graph(net, (2, 4, 4)), tmp_path / "net.nir"))
    check_integers(graph, run, bits, pool)
    frames = data.test.frames
    np.testing.assert_array_equal(file_forward(graph, frames).astype(np.float32), net.logits(frames).numpy())
    assert ("pool_folded_into" in graph.metadata) == (pool == 3)


def test_export_command_writes_integer_runs_and_refuses_other_networks(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from spikeroll.cli import main

    run, _ = train(tmp_path, 4, 1)
    result = CliRunner().invoke(main, ["export", str(run)])
    assert result.exit_code == 0 and (run / "network.nir").exists()
    monkeypatch.setattr("spikeroll.api.load_trained", lambda run_dir, model=None: (None, torch.nn.Linear(2, 2)))
    with pytest.raises(SpikerollError, match="holds a Linear; spikeroll export writes"):
        export_run(run)
