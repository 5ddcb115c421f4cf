"""BPTT baseline: surrogate gradient checked against finite differences, learning, resume."""


import pytest
import torch
import torch.nn.functional as F

from spikeroll.nets.model import FastSigmoidSpike, SpikingNet
from spikeroll.training.rundir import load_checkpoint
from spikeroll.training.trainer import Trainer

from test_train import metrics, small_config, synthetic_data


def fast_sigmoid(x, slope):
    """σ(x) = x / (1 + k|x|): its derivative 1/(1 + k|x|)² is the surrogate derivative."""
    return x / (1.0 + slope * x.abs())


def reference_loss(params, frames, labels, beta, threshold, reset, readout, slope, anchor=None):
    """Plain float64 network, written out without autograd or spikeroll.nets.model.

    The surrogate gradient is, by definition, the exact gradient of the network in which each
    spike s = H(x) (x = v − θ) is replaced by H(x*) + σ(x) − σ(x*), x* being the value x takes in
    the unperturbed network: at the unperturbed parameters this network's forward pass equals the
    Heaviside network's, and ∂s/∂x = σ'(x*) = the fast-sigmoid surrogate. `anchor=None` runs the
    Heaviside network and returns (loss, the x* of every spike); with `anchor` given it runs the
    smooth network above, whose loss we differentiate by central finite differences.
    """
    layers = list(zip(params[0::2], params[1::2]))
    steps = frames.shape[1]
    h_seq = [frames[:, t].flatten(1).double() for t in range(steps)]
    recorded, k = [], 0
    for i, (w, b) in enumerate(layers):
        v = torch.zeros(frames.shape[0], w.shape[0], dtype=torch.float64)
        outputs = []
        last = i == len(layers) - 1
        for t in range(steps):
            v = beta * v + h_seq[t] @ w.t() + b
            if last and readout == "membrane":
                outputs.append(v)
                continue
            x = v - threshold
            if anchor is None:
                s = (x >= 0).double()
                recorded.append(x.clone())
            else:
                x_star = anchor[k]
                s = (x_star >= 0).double() + fast_sigmoid(x, slope) - fast_sigmoid(x_star, slope)
                k += 1
            v = v - s * threshold if reset == "subtract" else v * (1.0 - s)
            outputs.append(s)
        h_seq = outputs
    logits = torch.stack(h_seq).mean(0) if readout == "membrane" else torch.stack(h_seq).sum(0)
    loss = F.cross_entropy(logits, labels)
    return loss, recorded


@pytest.mark.parametrize("reset,readout", [("subtract", "membrane"), ("zero", "spikes")])
def test_surrogate_gradient_matches_finite_differences(reset, readout):
    beta, threshold = 0.8, 0.5
    net = SpikingNet([2 * 2 * 2, 5, 4, 3], beta=beta, threshold=threshold, reset=reset, readout=readout,
                     init_gain=3.0, seed=2)
    gen = torch.Generator().manual_seed(0)
    for name in net.params:
        net.params[name] = net.params[name].double()
        if name.endswith("bias"):
            net.params[name] += 0.3 * torch.rand(net.params[name].shape, generator=gen, dtype=torch.float64)
        net.params[name].requires_grad_(True)
    frames = (torch.rand(4, 5, 2, 2, 2, generator=gen) < 0.5).double()
    labels = torch.tensor([0, 1, 2, 1])

    loss = F.cross_entropy(net.logits(frames), labels)
    grads = torch.autograd.grad(loss, list(net.params.values()))

    params = [p.detach().clone() for p in net.params.values()]
    ref_loss, anchor = reference_loss(params, frames, labels, beta, threshold, reset, readout,
                                      FastSigmoidSpike.slope)
    torch.testing.assert_close(loss.detach(), ref_loss, rtol=1e-12, atol=1e-12)  # same forward
    spikes = sum(int((x >= 0).sum()) for x in anchor)
    assert 0 < spikes < sum(x.numel() for x in anchor)  # the check is not vacuous

    h = 1e-6
    for p, grad in zip(params, grads):
        numeric = torch.zeros_like(p)
        for j in range(p.numel()):
            old = p.view(-1)[j].item()
            p.view(-1)[j] = old + h
            up, _ = reference_loss(params, frames, labels, beta, threshold, reset, readout,
                                   FastSigmoidSpike.slope, anchor)
            p.view(-1)[j] = old - h
            down, _ = reference_loss(params, frames, labels, beta, threshold, reset, readout,
                                     FastSigmoidSpike.slope, anchor)
            p.view(-1)[j] = old
            numeric.view(-1)[j] = (up - down) / (2 * h)
        torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)
    assert all(float(g.abs().max()) > 1e-6 for g in grads)  # gradient reaches every layer, through time


def test_bptt_learns_easy_task(tmp_path):
    cfg = small_config(strategy="bptt", generations=40, lr=0.01, eval_every=40, checkpoint_every=40)
    report = Trainer(cfg, tmp_path, synthetic_data()).run(progress=False)
    assert report["train_accuracy"] >= 0.9 and report["val_accuracy"] >= 0.8
    assert report["strategy"] == "bptt" and report["generations"] == 40
    records = metrics(tmp_path)
    assert set(records[0]) >= {"generation", "fitness_mean", "fitness_max", "train_batch_accuracy", "lr"}
    assert records[-1]["fitness_mean"] > records[0]["fitness_mean"]  # the loss fell


def test_time_budget_stops_early_and_reports(tmp_path):
    cfg = small_config(strategy="bptt", lr=0.01, generations=1000, eval_every=1000, checkpoint_every=1000)
    report = Trainer(cfg, tmp_path / "b", synthetic_data()).run(progress=False, max_seconds=1e-9)
    assert report["generations"] == 1  # the first step spends the budget; it is still evaluated
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["generation"] == 1
    last = metrics(tmp_path / "b")[-1]
    assert last["generation"] == 0 and last["val_accuracy"] is not None
