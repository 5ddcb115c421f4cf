"""The fused CPU kernel (spikeroll.nets.kernels) against the brute-force reference and the PyTorch path."""

import json

import pytest
import torch

from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets import kernels
from spikeroll.nets.model import SpikingNet
from spikeroll.training.trainer import Trainer

from test_core import explicit_member_params, reference_logits
from test_train import small_config, synthetic_data

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")


def float32_net(sizes, readout, reset):
    net = SpikingNet(list(sizes), beta=0.8, threshold=0.5, reset=reset, readout=readout, init_gain=3.0, seed=1)
    for name in net.params:
        if name.endswith("bias"):
            net.params[name] += 0.1
    return net


@pytest.mark.parametrize("rank", [1, 2, None])
@pytest.mark.parametrize("readout,reset,sizes", [("membrane", "subtract", (12, 7, 5, 3)),
                                                 ("spikes", "zero", (12, 9, 3)),
                                                 ("membrane", "zero", (12, 6, 4))])
def test_kernel_population_forward_equals_explicit_weights(rank, readout, reset, sizes):
    """float32 on the kernel path, 70 samples (a full block of 64 and a partial one), against the
    float64 brute force with explicit W + σ·A·Bᵀ per member."""
    net = float32_net(sizes, readout, reset)
    frames = (torch.rand(70, 5, 12, generator=torch.Generator().manual_seed(7)) < 0.4).float()
    assert net._fused(net._inputs(frames), None)  # this test is about the kernel path
    es = EvolutionStrategy(net, population=6, rank=rank, seed=5)
    got = net.population_logits(frames, lambda pairs: es.ask(2, pairs, 0.3), es.pairs, chunk_pairs=2)
    assert got.shape == (6, 70, sizes[-1])
    for member in range(6):
        params = [p.double() for p in explicit_member_params(es, 2, 0.3, member)]
        want = reference_logits(params, frames.double(), 0.8, 0.5, reset, readout)
        torch.testing.assert_close(got[member].double(), want, atol=2e-5, rtol=1e-5)
    spikes = net.spike_trains(frames)[0]
    assert 0 < spikes.mean() < 1  # the network must spike for the comparison to mean anything
    torch.testing.assert_close(net.logits(frames).double(),
                               reference_logits([p.double() for p in net.params.values()], frames.double(),
                                                0.8, 0.5, reset, readout), atol=2e-5, rtol=1e-5)


def test_kernel_matches_pytorch_path_at_bench_shape():
    """N-MNIST-sized input, 128 hidden, 64 samples: both paths give the same logits."""
    net = SpikingNet([2312, 128, 10], seed=0)
    frames = (torch.rand(64, 10, 2, 34, 34, generator=torch.Generator().manual_seed(1)) < 0.05).float()
    es = EvolutionStrategy(net, population=32, rank=1, seed=0)
    def run(kernel):
        net.use_kernel = kernel
        return net.population_logits(frames, lambda pairs: es.ask(0, pairs, 0.05), es.pairs, 8)
    torch.testing.assert_close(run(True), run(False), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("strategy", ["eggroll", "openes"])
def test_training_curve_same_with_kernel_and_pytorch_path(tmp_path, monkeypatch, strategy):
    """The speed-up leaves training unchanged: same seed, same curve (to float tolerance)."""
    data = synthetic_data()
    curves = {}
    for kernel in (True, False):
        monkeypatch.setattr(SpikingNet, "use_kernel", kernel, raising=False)
        monkeypatch.setattr(SpikingNet, "__init__", _init_with(kernel))
        out = tmp_path / str(kernel)
        Trainer(small_config(strategy=strategy, generations=12), out, data).run(progress=False)
        curves[kernel] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(curves[True]) == len(curves[False]) == 12
    for a, b in zip(curves[True], curves[False]):
        assert a["fitness_mean"] == pytest.approx(b["fitness_mean"], rel=1e-4, abs=1e-5)
        assert a["train_batch_accuracy"] == pytest.approx(b["train_batch_accuracy"], abs=1e-6)


_original_init = SpikingNet.__init__


def _init_with(kernel):
    def init(self, *args, **kwargs):
        _original_init(self, *args, **kwargs)
        self.use_kernel = kernel
    return init


def test_kernel_front_end_rejects_inconsistent_shapes():
    """The compiled kernel has no bounds checks, so its front end must refuse mismatched shapes."""
    base = torch.zeros(1, 6, 3, 5)  # (members, H = 6, T = 3, B = 5)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        kernels.lif_project(base, 0.9, 1.0, "subtract", torch.zeros(4, 7), torch.zeros(4), 1)
