"""NIR export/import against the real nir, nirtorch and snnTorch packages (the dev extra).

References: the original network (round trips), snnTorch's own neurons and exporter, and a
hand-written NIR simulator in float64 with dyadic numbers (exact in float32 too)."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")
snn = pytest.importorskip("snntorch")
pytest.importorskip("nirtorch")
import snntorch.export_nir  # noqa: E402

from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.interop.nir import (  # noqa: E402
    NIRExportWarning,
    check_inputs,
    export_graph,
    import_graph,
    inclusive_threshold,
    strict_threshold,
    write_graph,
)
from spikeroll.interop.readers import to_snntorch  # noqa: E402
from spikeroll.nets.model import SpikingNet  # noqa: E402

from test_train import synthetic_data  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-subset"


def frames(n=48, T=8, seed=0, density=0.12):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, T, 2, 34, 34, generator=gen) < density).to(torch.uint8)


def net_for(reset="zero", readout="membrane", pool=2, seed=0):
    # init_gain 4: about one hidden neuron in ten spikes per step, so resets and thresholds matter
    inputs = 2 * math.ceil(34 / pool) ** 2
    return SpikingNet([inputs, 48, 10], reset=reset, readout=readout, pool=pool, init_gain=4.0, seed=seed)


def export_quietly(net, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)
        return export_graph(net, *args, **kwargs)


@pytest.fixture(scope="module")
def real_frames():
    if not (SHARED / "Train").is_dir():
        pytest.skip(f"shared N-MNIST subset not found at {SHARED}")
    from spikeroll.data import load_dataset

    data = load_dataset("nmnist", str(SHARED), time_bins=10, val_ids="801-1000", progress=False)
    return torch.cat([data.train.frames, data.val.frames])  # all 1,000 recordings


def snntorch_run(graph, x):
    """Logits and per-layer spikes (T, B, width) of the graph run in snnTorch."""
    model, record = to_snntorch(graph), {}
    for module in model.step.modules():
        if isinstance(module, snn.Leaky):
            module.register_forward_hook(lambda m, i, out: record.setdefault(m, []).append(out))
    with torch.no_grad():
        logits = model(x)
    return logits, [torch.stack(v) for v in record.values()]


# threshold encoding -----------------------------------------------------------------------------

@pytest.mark.parametrize("theta", [1.0, 0.3, 2.5, 1e-3])
def test_strict_threshold_agrees_with_inclusive_comparison(theta):
    strict = strict_threshold(theta)
    assert strict.dtype == np.float32 and float(strict) < theta
    # every float32 within 8 ulps of θ: v ≥ θ (spikeroll) exactly when v > θ' (NIR readers)
    v = np.float32(theta)
    near = [v]
    for direction in (np.inf, -np.inf):
        x = v
        for _ in range(8):
            x = np.nextafter(x, np.float32(direction))
            near.append(x)
    for x in near:
        assert (float(x) >= theta) == bool(x > strict), x
    assert float(strict_threshold(1.0)) == 1 - 2**-24  # worked by hand: the float32 just below 1
    assert float(inclusive_threshold(np.float32(1 - 2**-24))) == 1.0


# export -----------------------------------------------------------------------------------------

def test_export_writes_the_documented_chain(tmp_path):
    net = net_for(reset="zero")
    path = write_graph(export_graph(net), tmp_path / "net.nir")
    graph = nir.read(path)  # type checking on
    order, name = [], next(k for k, v in graph.nodes.items() if isinstance(v, nir.Input))
    succ = dict(graph.edges)
    while name:
        order.append(type(graph.nodes[name]).__name__)
        name = succ.get(name)
    assert order == ["Input", "AvgPool2d", "Flatten", "Affine", "LIF", "Affine", "LI", "Output"]
    lif = graph.nodes["lif0"]
    # β = 0.9 at dt = 1e-4 s: τ = dt/(1 − β) = 1e-3 s, r = τ/dt = 10, so Euler gives v ← 0.9·v + I
    assert lif.tau.shape == lif.r.shape == lif.v_threshold.shape == (48,)
    assert np.allclose(lif.tau, 1e-3) and np.allclose(lif.r, 10.0)
    assert np.allclose(1 - 1e-4 / lif.tau, 0.9, atol=1e-7) and np.allclose(lif.r * 1e-4 / lif.tau, 1.0)
    assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert np.all(lif.v_threshold == np.float32(1 - 2**-24))
    assert graph.nodes["li1"].tau.shape == (10,)
    assert np.array_equal(graph.nodes["affine0"].weight, net.params["layer0.weight"].numpy())
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in graph.metadata.items()}
    assert meta["dt"] == 1e-4 and meta["reset"] == "zero" and meta["readout"] == "membrane"
    assert "mean" in meta["readout_rule"] and ">=" in meta["spike_rule"]


def test_subtract_reset_export_warns_and_zero_does_not():
    with pytest.warns(NIRExportWarning, match="subtract"):
        export_graph(net_for(reset="subtract"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_graph(net_for(reset="zero"))


def test_pool_that_does_not_tile_the_frame_is_folded_into_the_first_layer():
    net = net_for(pool=3)  # 34 = 3·11 + 1: spikeroll's edge blocks are one pixel wide
    graph = export_graph(net)
    assert not any(isinstance(v, nir.AvgPool2d) for v in graph.nodes.values())
    w = graph.nodes["affine0"].weight.reshape(48, 2, 34, 34)
    w0 = net.params["layer0.weight"].numpy().reshape(48, 2, 12, 12)
    assert np.allclose(w[:, :, 0, 0], w0[:, :, 0, 0] / 9) and np.allclose(w[:, :, 33, 33], w0[:, :, 11, 11])
    imported = import_graph(graph).net
    x = frames(16).float()
    assert torch.allclose(imported.logits(x), net.logits(x), atol=1e-4)


# spikeroll -> NIR -> spikeroll --------------------------------------------------------------------

@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("readout", ["membrane", "spikes"])
def test_round_trip_gives_identical_logits(tmp_path, reset, readout):
    net = net_for(reset=reset, readout=readout)
    imported = import_graph(write_graph(export_quietly(net), tmp_path / "net.nir")).net
    assert (imported.sizes, imported.reset, imported.readout, imported.pool) == (net.sizes, reset, readout, 2)
    x = frames().float()
    assert torch.equal(imported.logits(x), net.logits(x))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_round_trip_on_real_recordings(tmp_path, real_frames, reset):
    net = net_for(reset=reset, seed=3)
    imported = import_graph(write_graph(export_quietly(net), tmp_path / "net.nir")).net
    x = real_frames.float()
    assert torch.equal(imported.logits(x), net.logits(x))


# spikeroll -> NIR -> snnTorch ---------------------------------------------------------------------

def check_snntorch_agrees(net, x, spike_sample):
    graph = export_graph(net)
    logits, spikes = snntorch_run(graph, x)
    ours = net.logits(x.float())
    assert torch.equal(logits.argmax(-1), ours.argmax(-1))
    assert torch.allclose(logits, ours, atol=1e-4)
    theirs = [s[:, :spike_sample] for s in spikes]
    reference = net.spike_trains(x[:spike_sample].float())
    assert len(theirs) == len(reference) == 1
    assert reference[0].mean() > 0.02  # the check means something only if neurons spike
    assert torch.equal(theirs[0], reference[0])  # every neuron, every step


def test_snntorch_runs_an_exported_zero_reset_network_identically():
    check_snntorch_agrees(net_for(reset="zero"), frames(64), spike_sample=64)


def test_snntorch_agrees_on_every_real_recording(real_frames):
    check_snntorch_agrees(net_for(reset="zero", seed=5), real_frames, spike_sample=100)


def test_snntorch_spike_readout():
    net = net_for(reset="zero", readout="spikes")
    logits, _ = snntorch_run(export_graph(net), frames(32))
    assert torch.equal(logits, net.logits(frames(32).float()))  # spike counts are integers


# snnTorch -> NIR -> spikeroll ---------------------------------------------------------------------



def snntorch_net(seed=0):
    torch.manual_seed(seed)

    def leaky(n, **kw):  # per-neuron β and θ: snnTorch's exporter writes scalars NIR cannot type-check
        return snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), reset_mechanism="zero",
                         reset_delay=False, init_hidden=True, **kw)

    net = torch.nn.Sequential(torch.nn.Linear(32, 16), leaky(16), torch.nn.Linear(16, 4), leaky(4, output=True))
    with torch.no_grad():
        net[0].weight.mul_(4)
        net[2].weight.mul_(3)
    return net


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # nirtorch, inside snnTorch's exporter
def test_snntorch_export_is_read_and_gives_the_same_outputs(tmp_path):
    net = snntorch_net()
    graph = snntorch.export_nir.export_to_nir(net, torch.zeros(1, 32), ignore_dims=[0])
    imported = import_graph(write_graph(graph, tmp_path / "snn.nir")).net
    assert imported.sizes == [32, 16, 4] and imported.readout == "spikes" and imported.reset == "zero"
    x = synthetic_data().train.frames.flatten(2).float()
    for module in net.modules():
        if isinstance(module, snn.Leaky):
            module.reset_mem()
    with torch.no_grad():
        counts = sum(net(x[:, t])[0] for t in range(x.shape[1]))
    assert counts.sum() > 20
    assert torch.equal(imported.logits(x), counts)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_graph_trains_from_init_from(tmp_path):
    from spikeroll.api import train_run
    from spikeroll.config import TrainConfig

    net = snntorch_net()
    path = write_graph(snntorch.export_nir.export_to_nir(net, torch.zeros(1, 32), ignore_dims=[0]),
                       tmp_path / "snn.nir")
    cfg = TrainConfig(init_from=str(path), population=16, batch_size=16, generations=4, time_bins=4,
                      eval_every=4, checkpoint_every=4, sigma=0.1, lr=0.05, device="cpu")
    report = train_run(cfg, tmp_path / "run", data=synthetic_data(), progress=False)
    assert report["generations"] == 4
    from spikeroll.training.rundir import load_trained

    cfg_saved, trained = load_trained(tmp_path / "run")
    assert cfg_saved.hidden == [16] and cfg_saved.readout == "spikes" and cfg_saved.reset == "zero"
    start = import_graph(path).net
    assert not torch.equal(trained.params["layer0.weight"], start.params["layer0.weight"])
    # a few steps at lr 0.05 move the weights, but not far from where the graph put them
    assert (trained.params["layer0.weight"] - start.params["layer0.weight"]).abs().max() < 0.5


# NIR semantics by hand ----------------------------------------------------------------------------

def simulate_nir(x, layers, dt):
    """Forward-Euler NIR in float64: each layer (W, b, node); LIF spikes when v > v_threshold and
    resets to v_reset; LI returns the mean membrane. x: (B, T, n)."""
    B, T, _ = x.shape
    h, states = x.astype(np.float64), [np.zeros((B, w.shape[0])) for w, _, _ in layers]
    outputs, spikes = [], []
    for t in range(T):
        s = h[:, t]
        for k, (w, b, node) in enumerate(layers):
            current = s @ w.T + b
            v = states[k] + dt / node.tau * (node.v_leak - states[k] + node.r * current)
            if isinstance(node, nir.LIF):
                s = (v > node.v_threshold).astype(np.float64)
                v = np.where(s > 0, node.v_reset, v)
                spikes.append(s)
            else:
                s = v
            states[k] = v
        outputs.append(s)
    return np.mean(outputs, axis=0), np.stack(spikes)


def test_per_neuron_thresholds_gains_and_leaks_are_folded_exactly():
    """Dyadic weights, β = 0.5, thresholds 1 and 2, an input gain of 2 and a leak potential: every
    number is exact in float32, so spikeroll must match the float64 NIR simulation exactly."""
    dt, rng = 1e-4, np.random.default_rng(0)
    w1 = rng.integers(-8, 9, (6, 5)) / 8.0
    w2 = rng.integers(-8, 9, (3, 6)) / 8.0
    tau1, tau2 = np.full(6, 2 * dt), np.full(3, 2 * dt)  # β = 1 − dt/τ = 0.5
    lif = nir.LIF(tau=tau1, r=np.array([2.0, 2.0, 2.0, 4.0, 4.0, 4.0]), v_leak=np.array([0, 0, 0.5, 0, 0, 0.25]),
                  v_threshold=np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0]), v_reset=np.zeros(6))
    li = nir.LI(tau=tau2, r=np.full(3, 4.0), v_leak=np.zeros(3))
    b1, b2 = np.zeros(6), np.array([0.25, 0.0, -0.5])
    graph = nir.NIRGraph.from_list(nir.Affine(weight=w1, bias=b1), lif, nir.Affine(weight=w2, bias=b2), li)
    imported = import_graph(graph)
    assert imported.net.beta == 0.5 and imported.notes
    x = rng.integers(0, 2, (20, 8, 5)).astype(np.float32)
    logits, spikes = simulate_nir(x, [(w1, b1, lif), (w2, b2, li)], dt)
    assert 0.1 < spikes.mean() < 0.9
    assert np.array_equal(imported.net.spike_trains(torch.from_numpy(x))[0].double().numpy(), spikes)
    assert np.array_equal(imported.net.logits(torch.from_numpy(x)).double().numpy(), logits)


# bad input ----------------------------------------------------------------------------------------

def small_chain(**lif_fields):
    fields = dict(tau=np.full(4, 1e-3), r=np.full(4, 10.0), v_leak=np.zeros(4), v_threshold=np.ones(4))
    fields.update(lif_fields)
    return [nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)), nir.LIF(**fields),
            nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)),
            nir.LI(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2))]


def one_line_error(graph, *fragments):
    with pytest.raises(SpikerollError) as info:
        import_graph(graph)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_unsupported_node_is_named_with_what_is_supported():
    nodes = small_chain()
    nodes[1] = nir.CubaLIF(tau_syn=np.full(4, 1e-3), tau_mem=np.full(4, 1e-3), r=np.full(4, 10.0),
                           v_leak=np.zeros(4), v_threshold=np.ones(4))
    one_line_error(nir.NIRGraph.from_list(*nodes), "'cubalif'", "CubaLIF", "supported node types", "LIF")


def test_recurrent_graph_is_refused():
    nodes = dict(input=nir.Input(input_type=np.array([3])), a=nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)),
                 lif=small_chain()[1], rec=nir.Linear(weight=np.eye(4)), out=nir.Output(output_type=np.array([4])))
    edges = [("input", "a"), ("a", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    one_line_error(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), "feed-forward")


def test_branching_graph_is_refused():
    chain = small_chain()
    nodes = dict(input=nir.Input(input_type=np.array([3])), a=chain[0], lif=chain[1], b=chain[2], li=chain[3],
                 skip=nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)), out=nir.Output(output_type=np.array([2])))
    edges = [("input", "a"), ("a", "lif"), ("lif", "b"), ("b", "li"), ("li", "out"), ("input", "skip"), ("skip", "li")]
    one_line_error(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), "'input'", "feed-forward")


def test_mismatched_shapes_are_refused(tmp_path):
    nodes = small_chain()
    nodes[2] = nir.Affine(weight=np.ones((2, 5)), bias=np.zeros(2))  # the LIF layer has 4 outputs
    graph = nir.NIRGraph.from_list(*nodes, type_check=False)
    one_line_error(graph, "weight shape (2, 5)", "4 features")
    path = tmp_path / "bad.nir"
    nir.write(path, graph)  # nir.read type-checks the same graph
    one_line_error(path, "invalid NIR graph")


def test_different_beta_per_layer_is_refused():
    nodes = small_chain()
    nodes[3] = nir.LI(tau=np.full(2, 2e-3), r=np.full(2, 20.0), v_leak=np.zeros(2))  # β 0.95 after β 0.9
    one_line_error(nir.NIRGraph.from_list(*nodes), "'li'", "shares one β")


def test_nonzero_reset_potential_is_refused():
    one_line_error(nir.NIRGraph.from_list(*small_chain(v_reset=np.full(4, 0.5))), "'lif'", "v_reset")


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all", None])
def test_corrupt_or_missing_file(tmp_path, content):
    path = tmp_path / "broken.nir"
    if content is not None:
        path.write_bytes(content)
    one_line_error(path, str(path))


def test_truncated_file(tmp_path):
    path = write_graph(export_graph(net_for()), tmp_path / "net.nir")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line_error(path, "not a readable NIR file")


def test_dataset_that_does_not_fit_the_graph():
    imported = import_graph(export_graph(net_for()))
    with pytest.raises(SpikerollError, match=r"\(2, 34, 34\).*\(2, 4, 4\)"):
        check_inputs(imported, synthetic_data().train.frames)


# command line and Python API --------------------------------------------------------------------------

def test_cli_export_then_eval(tmp_path):
    from click.testing import CliRunner

    from spikeroll.cli import main
    from spikeroll.config import TrainConfig
    from spikeroll.training.trainer import Trainer

    cfg = TrainConfig(hidden=[8], population=8, batch_size=16, generations=2, time_bins=4, device="cpu")
    Trainer(cfg, tmp_path / "run", synthetic_data()).run(progress=False)  # subtract reset, the default
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "net.nir")])
    assert result.exit_code == 0, result.output
    assert "warning: this network resets by subtracting" in result.output
    assert result.output.strip().splitlines()[-1] == str(tmp_path / "net.nir")
    imported = import_graph(tmp_path / "net.nir")
    assert imported.input_shape == (32,) and imported.net.reset == "subtract"
    # its metadata names the run's dataset (digits), whose 2 x 34 x 34 frames do not fit 32 inputs
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "net.nir")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "error: the graph takes input of shape (32,)" in result.output


def test_eval_of_a_graph_equals_the_network_it_came_from(tmp_path):
    from spikeroll.api import evaluate_run, load_data
    from spikeroll.config import TrainConfig
    from spikeroll.training.evaluation import accuracy

    net = SpikingNet([2312, 32, 10], reset="zero", init_gain=4.0, seed=2)
    path = write_graph(export_graph(net, metadata={"dataset": "digits", "time_bins": 10}), tmp_path / "n.nir")
    result = evaluate_run(path)
    data = load_data(TrainConfig(dataset="digits", time_bins=10), progress=False)
    assert result["dataset"] == "digits"
    for split in ("train", "val", "test"):
        assert result[f"{split}_accuracy"] == accuracy(net, getattr(data, split))
