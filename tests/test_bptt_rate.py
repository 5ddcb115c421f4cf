"""BPTT's spike regulariser (--rate-weight, --rate-target): its value against a brute-force count of
a hand-made network's spikes, its gradient, that it lowers the firing rate, and its refusals."""

import dataclasses
import json

import pytest
import torch

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.es.bptt import spike_penalty
from spikeroll.nets.model import SpikingNet
from spikeroll.training.trainer import Trainer

from test_train import small_config, synthetic_data


def brute_force_spikes(params, frames, beta, threshold):
    """Spikes of each hidden layer of a subtract-reset LIF stack, summed over bins and samples,
    written loop by loop in plain Python floats (no torch arithmetic, no spikeroll)."""
    layers = list(zip(params[0::2], params[1::2]))[:-1]  # hidden layers only
    B, T = frames.shape[:2]
    inputs = [[frames[b, t].flatten().tolist() for t in range(T)] for b in range(B)]
    totals = []
    for w, bias in layers:
        w, bias = w.tolist(), bias.tolist()
        outputs, count = [], 0
        for b in range(B):
            v = [0.0] * len(w)
            row = []
            for t in range(T):
                s = []
                for j in range(len(w)):
                    v[j] = beta * v[j] + sum(wi * x for wi, x in zip(w[j], inputs[b][t])) + bias[j]
                    fired = 1.0 if v[j] >= threshold else 0.0
                    v[j] -= fired * threshold
                    s.append(fired)
                    count += int(fired)
                row.append(s)
            outputs.append(row)
        inputs = outputs
        totals.append(count)
    return totals


def hand_made():
    net = SpikingNet([8, 5, 4, 3], beta=0.8, threshold=0.5, init_gain=3.0, seed=2)
    for name in net.params:
        net.params[name] = net.params[name].double()
    gen = torch.Generator().manual_seed(0)
    frames = (torch.rand(4, 5, 2, 2, 2, generator=gen) < 0.5).double()
    return net, frames


def test_penalty_equals_brute_force_count():
    net, frames = hand_made()
    counts = brute_force_spikes(list(net.params.values()), frames, 0.8, 0.5)
    assert all(0 < c < 4 * 5 * w for c, w in zip(counts, (5, 4)))  # neither silent nor saturated: not vacuous
    B, T = 4, 5
    reference = 8 * 5 * T + 5 * 4 * T + 4 * 3 * T  # every input and neuron firing in every bin
    synops_hidden = (counts[0] * 4 + counts[1] * 3) / B  # layer 0 drives 4 synapses, layer 1 the 3 readouts
    _, spikes = net.logits_and_hidden_spikes(frames)
    penalty, found = spike_penalty(spikes, net.sizes, 2.5)
    assert float(penalty) == pytest.approx(2.5 * synops_hidden / reference, rel=1e-12)
    assert float(found.synops_hidden()[0]) == synops_hidden
    rates = [counts[0] / (5 * T * B), counts[1] / (4 * T * B)]
    targets = [0.1, rates[1] + 0.05]  # the second layer sits below its target: no penalty from it
    penalty, _ = spike_penalty(spikes, net.sizes, 3.0, targets)
    assert rates[0] > 0.1
    assert float(penalty) == pytest.approx(3.0 * (rates[0] - 0.1) ** 2, rel=1e-12)


def test_penalty_is_differentiable_and_logits_unchanged():
    net, frames = hand_made()
    plain = net.logits(frames)
    for p in net.params.values():
        p.requires_grad_(True)
    logits, spikes = net.logits_and_hidden_spikes(frames)
    assert torch.equal(logits.detach(), plain)  # the recording forward computes the same logits
    penalty, _ = spike_penalty(spikes, net.sizes, 1.0)
    grads = torch.autograd.grad(penalty, [net.params["layer0.weight"], net.params["layer1.weight"]])
    assert all(float(g.abs().max()) > 0 for g in grads)  # the surrogate carries the count to both layers


def last_val_rate(run_dir):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if "val_rate_layer0" in r][-1]["val_rate_layer0"]


@pytest.mark.parametrize("extra", [{"rate_weight": 30.0}, {"rate_weight": 30.0, "rate_target": [0.02]}])
def test_regulariser_lowers_the_firing_rate(tmp_path, extra):
    data = synthetic_data()
    cfg = small_config(strategy="bptt", generations=40, lr=0.01, eval_every=40, checkpoint_every=40)
    Trainer(cfg, tmp_path / "plain", data).run(progress=False)
    Trainer(dataclasses.replace(cfg, **extra), tmp_path / "reg", data).run(progress=False)
    plain, regularised = last_val_rate(tmp_path / "plain"), last_val_rate(tmp_path / "reg")
    assert plain > 0.05 and regularised < 0.7 * plain


@pytest.mark.parametrize("settings,message", [
    ({"strategy": "bptt", "objective": "synops"}, "--rate-weight"),
    ({"strategy": "bptt", "rate_weight": -1.0}, "rate_weight=-1.0 must be a finite number >= 0"),
    ({"strategy": "bptt", "rate_weight": 1.0, "rate_target": [1.5]}, "in [0, 1]"),
    ({"strategy": "bptt", "rate_weight": 1.0, "rate_target": [-0.1]}, "in [0, 1]"),
    ({"strategy": "bptt", "rate_weight": 1.0, "rate_target": [0.1, 0.1]}, "one rate per hidden layer"),
    ({"strategy": "bptt", "rate_target": [0.1]}, "needs --rate-weight"),
    ({"strategy": "eggroll", "rate_weight": 1.0}, "--objective synops"),
    ({"strategy": "bptt", "rate_weight": 1.0, "neuron": "loihi", "weight_bits": 8}, "float LIF"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(SpikerollError, match=None) as caught:
        TrainConfig(**settings).validate()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_rate_target_from_text_and_file_values():
    cfg = TrainConfig.from_dict({"strategy": "bptt", "hidden": "8,4", "rate_weight": 1, "rate_target": "0.05,0.1"})
    assert cfg.validate().rate_target == [0.05, 0.1]
    assert TrainConfig.from_dict({"strategy": "bptt", "rate_weight": 1, "rate_target": 0.05}).rate_target == [0.05]
    with pytest.raises(SpikerollError, match="comma-separated list of rates"):
        TrainConfig.from_dict({"rate_target": "a,b"})
    with pytest.raises(SpikerollError, match="a list of numbers"):
        TrainConfig.from_dict({"rate_target": ["x"]})
