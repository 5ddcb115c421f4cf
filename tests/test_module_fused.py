"""The fused CPU kernels of the module path (spikeroll.modules.fused, .neurons, layers.SharedOutputs):
snnTorch's own Leaky is the reference for FastLeaky (bit for bit), explicit per-member float64
copies of the model for the float32 population forward, brute-force loops for each kernel."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spikeroll.modules import EGGROLL, fused, layers, neurons

from test_module_es import TimeLoop, reference_outputs, spike

snn = pytest.importorskip("snntorch")
pytestmark = pytest.mark.skipif(not fused.kernels.available(), reason="numba is not installed")


def run_steps(forward, module, inputs, mem=None, init_hidden=False):
    """Call a Leaky forward over time; collect every returned tensor and the state left behind."""
    outs = []
    for x in inputs:
        out = forward(x) if init_hidden else forward(x, mem)
        out = out if isinstance(out, tuple) else (out,)
        if not init_hidden:
            mem = out[1]
        outs.append([t.clone() for t in out] + [module.mem.clone()])
    return outs


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("init_hidden,output", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("beta,threshold,graded", [(0.9, 1.0, 1.0), (1.3, 0.5, 2.0), (0.25, 0.7, -1.5)])
def test_fast_leaky_is_snntorch_leaky_bit_for_bit(reset, init_hidden, output, beta, threshold, graded):
    torch.manual_seed(0)
    leaky = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=init_hidden,
                      output=output, graded_spikes_factor=graded)
    inputs = torch.randn(8, 5, 3, 7) * 1.5  # T steps of (batch, channels, width)
    start = None if init_hidden else torch.randn(5, 3, 7)
    assert neurons.FastLeaky.eligible(leaky)
    theirs_module, ours_module = leaky, copy.deepcopy(leaky)
    theirs_module.reset_mem(), ours_module.reset_mem()
    fast = neurons.FastLeaky(ours_module)
    fast.verified = True  # the kernel itself, not the first-call comparison
    with torch.no_grad():
        theirs = run_steps(theirs_module, theirs_module, inputs, start, init_hidden)
        ours = run_steps(fast, ours_module, inputs, start, init_hidden)
    for step_theirs, step_ours in zip(theirs, ours):
        assert len(step_theirs) == len(step_ours)
        for a, b in zip(step_theirs, step_ours):
            assert torch.equal(a, b)
    assert any(t[0].any() for t in theirs) and not all(t[0].all() for t in theirs)  # some spikes, not all


def test_fast_leaky_only_where_it_is_exact():
    assert neurons.FastLeaky.eligible(snn.Leaky(beta=0.5, spike_grad=snn.surrogate.fast_sigmoid()))
    assert not neurons.FastLeaky.eligible(snn.Leaky(beta=0.5, learn_beta=True))  # perturbed per sample
    assert not neurons.FastLeaky.eligible(snn.Leaky(beta=torch.full((4,), 0.5)))  # per-neuron β
    assert not neurons.FastLeaky.eligible(snn.Leaky(beta=0.5, inhibition=True))
    assert not neurons.FastLeaky.eligible(snn.Leaky(beta=0.5, reset_delay=False))
    assert not neurons.FastLeaky.eligible(snn.Leaky(beta=0.5, spike_grad=torch.sigmoid))  # not a Heaviside forward

    class MyLeaky(snn.Leaky):  # a subclass may change anything
        pass

    assert not neurons.FastLeaky.eligible(MyLeaky(beta=0.5))
    assert not neurons.FastLeaky.eligible(snn.Synaptic(alpha=0.5, beta=0.5))


def test_fast_leaky_steps_aside_when_beta_changes_after_it_was_chosen():
    leaky = snn.Leaky(beta=0.8, init_hidden=True)
    fast = neurons.FastLeaky(leaky)
    leaky.beta = torch.tensor([0.5, 0.9, 0.7])  # per-neuron now: the kernel takes scalars only
    x = torch.randn(4, 3) * 2
    with torch.no_grad():
        leaky.reset_mem()
        got = fast(x)
        leaky.reset_mem()
        want = type(leaky).forward(leaky, x)
    assert torch.equal(got, want) and not fast.verified  # snnTorch's own forward ran


def test_fast_leaky_keeps_snntorchs_forward_when_the_first_call_disagrees(monkeypatch):
    leaky = snn.Leaky(beta=0.8, init_hidden=True)
    fast = neurons.FastLeaky(leaky)
    real = fused.leaky_step
    monkeypatch.setattr(fused, "leaky_step", lambda *a: tuple(t + 1e-3 for t in real(*a)))
    x = torch.randn(4, 6) * 2
    with torch.no_grad():
        leaky.reset_mem()
        got = fast(x)
        want_mem = leaky.mem.clone()
        leaky.reset_mem()
        want = type(leaky).forward(leaky, x)
    assert fast.disabled and not fast.verified
    assert torch.equal(got, want) and torch.equal(want_mem, leaky.mem)


def test_expand_shared_against_brute_force():
    rng = np.random.default_rng(0)
    R, O, S, P, K = 3, 4, 5, 6, 2
    y, z = rng.standard_normal((R, O, S)), rng.standard_normal((R, P, K, S))
    a, bias = rng.standard_normal((P, O, K)), rng.standard_normal((P, O))
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        got = fused.expand_shared(t(y), t(z), t(a), t(bias)).double().numpy()
    for p in range(P):
        for row in range(R):
            for o in range(O):
                for s in range(S):
                    delta = sum(z[row, p, k, s] * a[p, o, k] for k in range(K)) + bias[p, o]
                    assert got[p, 0, row, o, s] == pytest.approx(y[row, o, s] + delta, abs=1e-5)
                    assert got[p, 1, row, o, s] == pytest.approx(y[row, o, s] - delta, abs=1e-5)


@pytest.mark.parametrize("conv,shape", [
    (nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1), (2, 3, 9, 8)),
    (nn.Conv2d(2, 3, (2, 3), stride=(1, 2), padding=(2, 0), dilation=(2, 1)), (2, 2, 7, 9)),
    (nn.Conv1d(2, 3, 3, stride=2, padding=2, dilation=2), (2, 2, 11)),
])
def test_conv_project_is_each_members_own_convolution(conv, shape):
    torch.manual_seed(1)
    P, K = 3, 2
    x = torch.randn(2 * P * shape[0], *shape[1:])
    b = torch.randn(P, conv.weight[0].numel(), K)
    with torch.no_grad():
        got = fused.conv_project(conv, x, b)
    fn = F.conv2d if isinstance(conv, nn.Conv2d) else F.conv1d
    for row in range(x.shape[0]):
        p = row // (2 * shape[0])
        filters = b[p].t().reshape(K, *conv.weight.shape[1:]).double()
        want = fn(x[row:row + 1].double(), filters, None, conv.stride, conv.padding, conv.dilation)[0]
        torch.testing.assert_close(got[row].double(), want, rtol=1e-5, atol=1e-5)


def count_calls(monkeypatch, names):
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(fused, name)

        def counted(*a, real=real, name=name, **k):
            calls[name] += 1
            return real(*a, **k)
        monkeypatch.setattr(fused, name, counted)
    return calls


def assert_float32_population_matches(model, x, rank, **kwargs):
    """The float32 population forward (fused kernels) against float64 member copies. (Softsign,
    not Tanh, between layers: torch 2.13's float32 tanh is off by up to 8e-5 in some processes.)"""
    es = EGGROLL(model, population=6, rank=rank, sigma=0.3, seed=11, **kwargs)
    es.generation = 2
    got = es.population_forward(x)
    reference = copy.deepcopy(es)
    reference.model.double()
    want = reference_outputs(reference, x.double())
    for i, w in enumerate(want):
        torch.testing.assert_close(got[i].double(), w, rtol=1e-4, atol=1e-4)
    return got


@pytest.mark.parametrize("rank", [1, 3])
def test_fused_linear_and_conv_population_matches_member_copies(monkeypatch, rank):
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.Softsign(),
        nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2), nn.Softsign(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.Softsign(), nn.Linear(5, 3))
    x = torch.randn(5, 2, 6, 6)
    calls = count_calls(monkeypatch, ["expand_shared", "conv_project", "add_low_rank"])
    got = assert_float32_population_matches(model, x, rank)
    assert calls == {"expand_shared": 1, "conv_project": 1, "add_low_rank": 3}  # every layer took a kernel
    plain = EGGROLL(model, population=6, rank=rank, sigma=0.3, seed=11, fused=False)  # PyTorch ops only
    plain.generation = 2
    torch.testing.assert_close(plain.population_forward(x), got, rtol=1e-5, atol=1e-5)
    assert calls == {"expand_shared": 1, "conv_project": 1, "add_low_rank": 3}


def test_fused_snntorch_network_matches_member_copies_and_the_pytorch_path(monkeypatch):
    torch.manual_seed(3)
    body = nn.Sequential(nn.Linear(20, 16), snn.Leaky(beta=0.8, init_hidden=True, spike_grad=spike),
                         nn.Linear(16, 8),
                         snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", spike_grad=spike))
    model = TimeLoop(body, nn.Linear(8, 3))
    x = (torch.rand(6, 4, 20) < 0.3).float() * 2
    calls = count_calls(monkeypatch, ["leaky_step", "expand_shared", "add_low_rank"])
    got = assert_float32_population_matches(model, x, rank=1)
    assert calls["leaky_step"] == 2 * 6 and calls["expand_shared"] == 6  # both neurons, every step
    plain = EGGROLL(model, population=6, rank=1, sigma=0.3, seed=11, fused=False)
    plain.generation = 2
    torch.testing.assert_close(plain.population_forward(x), got, rtol=1e-5, atol=1e-5)


class CountingLinear(nn.Linear):
    calls = 0

    def forward(self, x):
        CountingLinear.calls += 1
        return super().forward(x)


def test_shared_layer_output_is_computed_once_per_population_forward():
    torch.manual_seed(4)
    model = TimeLoop(nn.Sequential(CountingLinear(6, 5), nn.Softsign(), nn.Linear(5, 4)), nn.Linear(4, 2))
    x = torch.randn(3, 4, 6)  # T = 3 steps
    outputs = {}
    for chunk in (None, 1, 2):
        es = EGGROLL(model, population=8, rank=1, sigma=0.2, seed=0, chunk_pairs=chunk, check=False)  # no probe
        CountingLinear.calls = 0
        outputs[chunk] = es.population_forward(x)
        assert CountingLinear.calls == 3  # once per step, not once per slice of pairs
    for chunk in (1, 2):  # the same outputs (to rounding: batched products may sum in another order)
        torch.testing.assert_close(outputs[chunk], outputs[None], rtol=1e-6, atol=1e-6)


def test_shared_outputs_compare_bits_not_identity():
    a = torch.randn(4, 5)
    assert layers._same_values(a, a.clone())
    assert layers._same_values(a, a[:])  # the same view
    changed = a.clone()
    changed[1, 2] = torch.nextafter(changed[1, 2], torch.tensor(10.0))
    assert not layers._same_values(a, changed)
    assert not layers._same_values(torch.zeros(3), -torch.zeros(3))  # −0 is another input bit pattern
    assert layers._same_values(a, a.t().contiguous().t())  # equal values in another layout: compared, equal
