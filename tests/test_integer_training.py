"""Integer networks in the Trainer: both ES estimators, the BPTT baselines, resume, export, bad input."""

import json
import math

import numpy as np
import pytest
import torch

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.es.egg import EGGEstimator
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets.integer import IntegerNet, export_loihi, loihi_parameters
from spikeroll.nets.model import SpikingNet
from spikeroll.training.rundir import load_checkpoint
from spikeroll.training.trainer import Trainer

from test_train import synthetic_data


def int_config(**kw):
    base = dict(hidden=[8], population=8, batch_size=16, generations=4, checkpoint_every=2, eval_every=2,
                time_bins=4, sigma=0.1, lr=0.05, init_gain=2.0, device="cpu", neuron="loihi", weight_bits=8)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("strategy,bits", [("eggroll", 8), ("eggroll", 2), ("egg", 4), ("bptt", 8)])
def test_resume_is_bit_exact(tmp_path, monkeypatch, strategy, bits):
    data = synthetic_data()
    cfg = int_config(strategy=strategy, weight_bits=bits, lr=0.01 if strategy == "bptt" else 0.05)
    Trainer(cfg, tmp_path / "full", data).run(progress=False)
    real_step = Trainer.step

    def dying_step(self):
        if self.generation == 3:
            raise KeyboardInterrupt  # killed after the checkpoint of generation 2
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "cut", data).run(progress=False)
    monkeypatch.setattr(Trainer, "step", real_step)
    Trainer(cfg, tmp_path / "cut", data, resume=True).run(progress=False)
    full, cut = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("full", "cut"))
    assert cut["generation"] == full["generation"] == 4
    for a, b in zip(full["params"], cut["params"]):
        assert torch.equal(a, b)
    moved = [not torch.equal(a, b) for a, b in zip(full["params"], IntegerNet(
        [32, 8, 4], bits, init_gain=2.0).params.values())]
    assert any(moved)  # training changed the network


def test_integer_run_refuses_to_resume_as_float(tmp_path):
    data = synthetic_data()
    Trainer(int_config(generations=2), tmp_path / "run", data).run(progress=False)
    with pytest.raises(SpikerollError, match="neuron: checkpoint 'loihi' vs now 'lif'"):
        Trainer(int_config(generations=2, neuron="lif", weight_bits=None), tmp_path / "run", data, resume=True)
    with pytest.raises(SpikerollError, match="weight_bits: checkpoint 8 vs now 4"):
        Trainer(int_config(generations=2, weight_bits=4), tmp_path / "run", data, resume=True)


@pytest.mark.parametrize("settings,message", [
    (dict(weight_bits=3), "weight_bits=3 is not supported"),
    (dict(weight_bits=None), "weight_bits=None is not supported"),
    (dict(neuron="lif"), "needs the integer network"),
    (dict(neuron="lif", weight_bits=None, strategy="egg"), "strategy egg updates integer weights"),
    (dict(strategy="openes"), "low-rank noise"),
    (dict(ptq=True), "ptq"),
    (dict(neuron="chip"), "unknown neuron"),
])
def test_bad_integer_settings(settings, message):
    with pytest.raises(SpikerollError, match=message):
        int_config(**settings).validate()


class FixedFitness:
    """An evaluator stub: the fitness the test chooses, for the EGG update alone."""

    def __init__(self, fitness):
        self.fitness = fitness

    def population_fitness(self, generation, sigma, frames, labels):
        return self.fitness, torch.zeros_like(self.fitness)

    def unit_pairs(self, batch):
        return 3  # not a divisor of the 4 pairs: the update must not depend on the chunking


def test_egg_update_matches_brute_force_z_test():
    net = IntegerNet([6, 5, 3], 8, init_gain=3.0, seed=4, frozen_step=0.02)
    with torch.no_grad():
        net.params["layer0.bias"].fill_(0.0)
    strategy = EvolutionStrategy(net.params, population=8, rank=2, seed=11)
    cfg = int_config(strategy="egg", egg_z=0.5, population=8, rank=2, shaping="none")  # ties stay ties
    fitness = torch.tensor([3.0, 1.0, 0.0, 2.0, 5.0, 5.0, -1.0, 4.0])  # pair signs +, −, 0, −
    before = net.layers()
    last = cfg.generations - 1  # where the annealed z has reached egg_z
    raw = strategy.raw_noise(last, range(4))  # drawn before the update, as the reference needs it
    raw = [tuple(t.clone() for t in noise) for noise in raw]
    egg = EGGEstimator(strategy, FixedFitness(fitness), cfg, net)
    assert egg.z_at(0) == 0.0 and abs(egg.z_at(last) - 0.5) < 1e-9
    egg.estimate(last, torch.zeros(1), torch.zeros(1))
    after = net.layers()
    signs = [1, -1, 0, -1]
    nonzero = 3
    for i in range(2):
        a, b = raw[2 * i]
        a8 = np.clip(np.round(a.numpy() * 16), -127, 127).astype(np.int64)
        b8 = np.clip(np.round(b.numpy() * 16), -127, 127).astype(np.int64)
        q = before[i]["q"].numpy().astype(np.int64)
        threshold = math.ceil(0.5 * math.sqrt(nonzero * 2) * 256)
        want = q.copy()
        for o in range(q.shape[0]):
            for j in range(q.shape[1]):
                z = sum(signs[k] * sum(int(a8[k, o, c]) * int(b8[k, j, c]) for c in range(2)) for k in range(4))
                if abs(z) >= threshold:
                    want[o, j] = min(max(q[o, j] + (1 if z > 0 else -1), -128), 127)
        assert np.array_equal(after[i]["q"].numpy(), want)
        assert after[i]["k"] == before[i]["k"]  # ±1 at a fixed step
        assert (want != q).any()  # the case moves some weights
        # biases: the same test on full-rank int8 noise, a move of one weight step 2^k
        e8 = np.clip(np.round(raw[2 * i + 1][0].numpy() * 16), -127, 127).astype(np.int64)
        zb = (np.array(signs)[:, None] * e8).sum(0)
        moved = np.where(np.abs(zb) >= math.ceil(0.5 * math.sqrt(nonzero) * 16), np.sign(zb), 0)
        bias = list(net.params.values())[2 * i + 1].double().numpy()
        assert np.allclose(bias, moved * 2.0 ** before[i]["k"], atol=0)
    assert all(p.grad is None for p in net.params.values())  # no optimiser step follows


def test_qat_gradient_flows_straight_through_and_ptq_trains_float_weights():
    frames = synthetic_data().train.frames[:8]
    for ptq in (False, True):
        net = IntegerNet([32, 6, 4], 4, init_gain=4.0, seed=2, ptq=ptq)
        for p in net.params.values():
            p.requires_grad_(True)
        out = net.logits(frames)
        out.square().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.params.values())
        assert float(net.params["layer1.weight"].grad.abs().sum()) > 0
        # a nudge far below one weight step changes the PTQ stand-in, not the quantised QAT one
        with torch.no_grad():
            nudged = net.params["layer1.weight"] + 1e-4
            w = net.params["layer1.weight"].clone()
            net.params["layer1.weight"].copy_(nudged)
            changed = not torch.equal(net.shadow_logits(frames), out.detach())
            net.params["layer1.weight"].copy_(w)
        assert changed == ptq


def lava_dense(weights, weight_exp, num_weight_bits, s):
    """Lava's AbstractPyDenseModelBitAcc for mixed-sign weights (lava src/lava/proc/dense/models.py,
    src/lava/utils/weightutils.py clip_weights and truncate_weights), re-implemented here."""
    w = np.clip(np.asarray(weights, np.int64), -256, 255)
    drop = 8 - num_weight_bits + 1
    w = (w >> drop) << drop
    acc = w @ s
    return acc << weight_exp if weight_exp > 0 else acc >> -weight_exp


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_loihi_parameters_reproduce_the_integer_dense_layer_in_lava(tmp_path, bits):
    net = IntegerNet([10, 6, 3], bits, init_gain=3.0, seed=bits)
    params = loihi_parameters(net)
    layers = net.layers()
    s = np.random.default_rng(0).integers(0, 4, (10, 5))
    for spec, layer in zip(params["layers"], layers):
        q = layer["q"].numpy().astype(np.int64)
        e = layer["weight_exp"]
        ours = (q @ s[: q.shape[1]]) << e if e >= 0 else (q @ s[: q.shape[1]]) >> -e
        dense = spec["dense"]
        assert np.array_equal(lava_dense(dense["weights"], dense["weight_exp"], dense["num_weight_bits"],
                                         s[: q.shape[1]]), ours)
        assert spec["lif"]["du"] == 4095 and spec["lif"]["dv"] == 410
        s = np.random.default_rng(1).integers(0, 2, (q.shape[0], 5))
    export_loihi(net, tmp_path / "net.json")
    assert json.loads((tmp_path / "net.json").read_text())["layers"][0]["q"] == layers[0]["q"].tolist()
    export_loihi(net, tmp_path / "net.npz")
    saved = np.load(tmp_path / "net.npz")
    assert np.array_equal(saved["layer0.q"], layers[0]["q"].numpy())
    assert json.loads(str(saved["meta"]))["weight_bits"] == bits


def test_incompatible_export_requests(tmp_path):
    with pytest.raises(SpikerollError, match="only integer networks"):
        loihi_parameters(SpikingNet([4, 2]))
    with pytest.raises(SpikerollError, match=r"\.json or \.npz"):
        export_loihi(IntegerNet([4, 2], 8), tmp_path / "net.nir")


def test_export_loihi_command(tmp_path):
    from click.testing import CliRunner

    from spikeroll.cli import main

    data = synthetic_data()
    Trainer(int_config(generations=1), tmp_path / "int", data).run(progress=False)
    Trainer(int_config(generations=1, neuron="lif", weight_bits=None), tmp_path / "float", data).run(progress=False)
    result = CliRunner().invoke(main, ["export-loihi", str(tmp_path / "int"), "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 0 and (tmp_path / "x.npz").exists()
    result = CliRunner().invoke(main, ["export-loihi", str(tmp_path / "float")])
    assert result.exit_code == 2
    assert "error: only integer networks export Loihi parameters" in result.output
