"""EGGROLL on arbitrary nn.Modules (spikeroll.modules), checked against explicit per-member deep
copies of the model with W + σ·s·A·Bᵀ/√r (and θ + σ·s·E for every other parameter) added, run
one by one in float64."""

import copy
import math

import pytest
import torch
from torch import nn

from spikeroll.errors import SpikerollError
from spikeroll.modules import EGGROLL
from spikeroll.modules.checks import reset_state

snn = pytest.importorskip("snntorch")


def spike(v):  # snnTorch's Heaviside returns float32; keep the model's dtype (float64 here)
    return (v > 0).to(v.dtype)


def member_copies(es: EGGROLL):
    """Deep copies of the model, one per member, with that member's perturbation written into
    its parameters: the brute-force definition of the population."""
    P, sigma, r = es.strategy.pairs, es.sigma, es.rank
    raw = es.strategy.raw_noise(es.generation, range(P))
    copies = []
    for k in range(P):
        for s in (1.0, -1.0):
            member = copy.deepcopy(es.model)
            params = dict(member.named_parameters())
            for name, p, noise in zip(es.names, es.params, raw):
                if len(noise) == 2:  # ε = A·Bᵀ/√r, as the (out, in·kh·kw) matrix of the weight
                    eps = (noise[0][k] @ noise[1][k].t() / math.sqrt(r)).reshape(p.shape)
                else:
                    eps = noise[0][k].reshape(p.shape)
                with torch.no_grad():
                    params[name].add_(s * sigma * eps)
            copies.append(member)
    return copies


def reference_outputs(es, x):
    outs = []
    for member in member_copies(es):
        with torch.no_grad():
            reset_state(member)
            outs.append(member(x))
    return outs


def assert_population_matches(model, x, population=6, rank=1, sigma=0.3, generation=3):
    model = model.double()
    es = EGGROLL(model, population=population, rank=rank, sigma=sigma, seed=11)
    es.generation = generation
    got = es.population_forward(x.double())
    want = reference_outputs(es, x.double())
    got = got if isinstance(got, tuple) else (got,)
    for i, w in enumerate(want):
        w = w if isinstance(w, tuple) else (w,)
        for g_t, w_t in zip(got, w):
            torch.testing.assert_close(g_t[i], w_t, rtol=1e-9, atol=1e-9)
    # the perturbations are not trivial: members differ from each other
    assert not torch.allclose(got[0][0], got[0][1])
    return es


class TimeLoop(nn.Module):
    """The contract: frames (T, B, ...) in, the module loops over time itself."""

    def __init__(self, body, readout):
        super().__init__()
        self.body, self.readout = body, readout

    def forward(self, x):
        return torch.stack([self.readout(self.body(x[t])) for t in range(x.shape[0])]).mean(0)


def test_linear_only_network_matches_member_copies():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    assert_population_matches(model, torch.randn(7, 6), rank=2)


def test_full_rank_linear_matches_member_copies():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    assert_population_matches(model, torch.randn(4, 6), rank=None)


@pytest.mark.parametrize("rank", [1, 2, None])
def test_conv2d_network_matches_member_copies(rank):
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="reflect"), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3))
    es = assert_population_matches(model, torch.randn(5, 2, 8, 8), rank=rank)
    if rank is not None:  # conv filters are the matrix (out, in·kh·kw)
        assert dict(zip(es.names, es.strategy.matrix_shapes))["3.weight"] == (4, 3 * 3 * 3)


def test_conv1d_and_frozen_weight_with_trainable_bias():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Conv1d(3, 2, 2, dilation=2), nn.Flatten(),
                          nn.Linear(2 * 5, 3))
    model[2].weight.requires_grad_(False)  # only its bias is trained (and perturbed)
    assert_population_matches(model, torch.randn(4, 2, 9), rank=1)


def test_snntorch_csnn_with_init_hidden_matches_member_copies():
    """The N-MNIST tutorial's shape: Conv–pool–Leaky, Conv–pool–Leaky, Linear–Leaky, held state."""
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.8, spike_grad=spike, init_hidden=True),
        nn.Conv2d(4, 6, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.8, spike_grad=spike, init_hidden=True),
        nn.Flatten(), nn.Linear(6, 3), snn.Leaky(beta=0.8, spike_grad=spike, init_hidden=True, output=True))

    class Tutorial(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            spikes, mems = zip(*(self.net(x[t]) for t in range(x.shape[0])))
            return torch.stack(spikes), torch.stack(mems)

    x = (torch.rand(4, 3, 2, 10, 10) < 0.4).float() * 3.0
    assert_population_matches(Tutorial(), x, sigma=0.5)


def test_recurrent_snntorch_network_matches_member_copies():
    torch.manual_seed(5)

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(5, 6)
            self.rlif = snn.RLeaky(beta=0.7, linear_features=6, spike_grad=spike)
            self.fc2 = nn.Linear(6, 3)
            self.lif = snn.Leaky(beta=0.9, spike_grad=spike)

        def forward(self, x):
            spk1, mem1 = self.rlif.init_rleaky()
            mem2 = self.lif.init_leaky()
            out = []
            for t in range(x.shape[0]):
                spk1, mem1 = self.rlif(self.fc1(x[t]), spk1, mem1)
                _, mem2 = self.lif(self.fc2(spk1), mem2)
                out.append(mem2)
            return torch.stack(out)

    es = assert_population_matches(Recurrent(), torch.randn(6, 4, 5) * 2, rank=2, sigma=0.5)
    shapes = dict(zip(es.names, es.strategy.matrix_shapes))
    assert shapes["rlif.recurrent.weight"] == (6, 6)  # the recurrent matrix gets low-rank noise


def test_learnable_beta_and_threshold_match_member_copies():
    torch.manual_seed(6)
    model = TimeLoop(
        nn.Sequential(nn.Linear(5, 6), snn.Leaky(beta=torch.full((6,), 0.8), learn_beta=True, learn_threshold=True,
                                                 spike_grad=spike, init_hidden=True)),
        nn.Linear(6, 3))
    es = assert_population_matches(model, torch.randn(5, 4, 5) * 2, sigma=0.2)
    assert {"body.1.beta", "body.1.threshold"} <= set(es.names)


def test_elementwise_parameter_before_any_layer_expands_the_shared_input():
    torch.manual_seed(7)

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.gain

    assert_population_matches(nn.Sequential(Scale(), nn.Linear(4, 3)), torch.randn(5, 4))


def test_a_layer_used_twice_gets_the_same_perturbation():
    torch.manual_seed(8)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.shared, self.conv = nn.Linear(4, 5), nn.Linear(5, 5), nn.Conv1d(1, 1, 3, padding=1)

        def forward(self, x):
            h = torch.tanh(self.shared(torch.tanh(self.inp(x))))
            h = torch.tanh(self.shared(h))  # second call, same weights
            return self.conv(self.conv(h.unsqueeze(1))).squeeze(1)

    assert_population_matches(Twice(), torch.randn(3, 4), rank=1)


def test_es_gradient_equals_sum_over_member_copies():
    """∇̂ = Σ_i w_i (θ_i − θ) / (N σ²), with θ_i read from the member copies, w the shaped fitness."""
    torch.manual_seed(9)
    model = TimeLoop(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(),
                                   snn.Leaky(beta=torch.tensor(0.7), learn_beta=True, spike_grad=spike,
                                             init_hidden=True)),
                     nn.Linear(2 * 4, 3)).double()
    es = EGGROLL(model, population=8, rank=1, sigma=0.1, seed=5)
    x = torch.randn(3, 4, 1, 6).double() * 2
    logits = es.population_forward(x)
    fitness = logits[:, :, 0].mean(1)  # any function of the outputs
    copies = member_copies(es)
    weights = es.backward(fitness)
    N, sigma = es.population, es.sigma
    for name, p in zip(es.names, es.params):
        theta = [dict(c.named_parameters())[name] for c in copies]
        want = sum(w * (t - p) for w, t in zip(weights.double(), theta)) / (N * sigma**2)
        torch.testing.assert_close(p.grad, -want.detach(), rtol=1e-6, atol=1e-9)  # w is float32
    assert es.generation == 1


def test_trains_with_a_torch_optimizer_and_resumes_bit_exactly():
    torch.manual_seed(10)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))

    def run(gens, start=None):
        torch.manual_seed(11)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        es = EGGROLL(model, population=16, sigma=0.1, seed=2)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        if start is not None:
            model.load_state_dict(start[0]), opt.load_state_dict(start[1]), es.load_state_dict(start[2])
        for _ in range(gens):
            logits = es.population_forward(x)
            es.backward(-nn.functional.cross_entropy(logits.transpose(1, 2), y[None].expand(16, -1),
                                                     reduction="none").mean(1))
            opt.step()
        return model, opt, es

    loss = lambda m: nn.functional.cross_entropy(m(x), y).item()
    full, _, _ = run(30)
    torch.manual_seed(11)
    assert loss(full) < loss(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))) - 0.05
    half, opt, es = run(15)
    state = (copy.deepcopy(half.state_dict()), copy.deepcopy(opt.state_dict()), es.state_dict())
    resumed, _, _ = run(15, start=state)
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


# ---- bad input ---------------------------------------------------------------------------------
def test_batchnorm_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with pytest.raises(SpikerollError, match=r"'1' \(BatchNorm1d\).*model.eval\(\)"):
        EGGROLL(model, population=4)
    EGGROLL(model.eval(), population=4)  # eval mode uses running statistics: per sample


def test_a_module_mixing_samples_is_named():
    class Center(nn.Module):
        def forward(self, x):
            return x - x.mean(0, keepdim=True)

    model = nn.Sequential(nn.Linear(4, 5), Center(), nn.Linear(5, 2))
    es = EGGROLL(model, population=4)
    with pytest.raises(SpikerollError, match=r"'1' \(Center\) mixes samples"):
        es.population_forward(torch.randn(6, 4))


def test_parameters_changed_during_forward_are_refused():
    class Drifting(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            with torch.no_grad():
                self.fc.weight.mul_(0.99)
            return self.fc(x)

    es = EGGROLL(Drifting(), population=4)
    with pytest.raises(SpikerollError, match="'fc.weight' changed during the forward"):
        es.population_forward(torch.randn(5, 3))


def test_model_without_weight_matrices_is_refused():
    with pytest.raises(SpikerollError, match="no trainable weight matrix"):
        EGGROLL(nn.Sequential(snn.Leaky(beta=0.9, learn_beta=True, init_hidden=True)), population=4)
    frozen = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(SpikerollError, match="no trainable weight matrix"):
        EGGROLL(frozen, population=4)


def test_other_bad_inputs_have_one_line_errors():
    with pytest.raises(SpikerollError, match=r"'0' \(Dropout\) is in training mode"):
        EGGROLL(nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), population=4)
    with pytest.raises(SpikerollError, match=r"'0' \(Embedding\)"):
        EGGROLL(nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2)), population=4)
    with pytest.raises(SpikerollError, match="population"):
        EGGROLL(nn.Linear(3, 2), population=5)

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.spare = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(SpikerollError, match="'spare' \\(Linear\\) holds trainable parameters but was not called"):
        EGGROLL(Unused(), population=4).population_forward(torch.randn(2, 3))
    es = EGGROLL(nn.Linear(3, 2), population=4)
    with pytest.raises(SpikerollError, match="fitness has 3 entries"):
        es.backward(torch.zeros(3))


def test_nested_modules_with_elementwise_parameters():
    """An outer module's per-sample parameter stays swapped in while its submodule runs."""
    torch.manual_seed(12)

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = nn.Parameter(torch.zeros(4))

        def forward(self, x):
            return x + self.shift

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain, self.inner = nn.Parameter(torch.ones(4)), Inner()

        def forward(self, x):
            return self.inner(x) * self.gain  # gain is read after the inner module returned

    assert_population_matches(nn.Sequential(nn.Linear(3, 4), Outer(), nn.Linear(4, 2)), torch.randn(5, 3))
