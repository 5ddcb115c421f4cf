"""Model, noise and ES update checked against brute-force references (explicit W + σ·A·Bᵀ)."""

import math

import pytest
import torch

from spikeroll.errors import SpikerollError
from spikeroll.es.strategies import EvolutionStrategy, shape_fitness
from spikeroll.nets.model import SpikingNet
from spikeroll.noise import counter_seed, pair_normals


def tiny_net(readout="membrane", reset="subtract", sizes=(12, 7, 5, 3)):
    net = SpikingNet(list(sizes), beta=0.8, threshold=0.5, reset=reset, readout=readout, init_gain=3.0, seed=1)
    for name in net.params:  # float64 so no spike flips on rounding differences
        net.params[name] = net.params[name].double()
        if name.endswith("bias"):
            net.params[name] += 0.1
    return net


def reference_logits(params, frames, beta, threshold, reset, readout):
    """Brute force, one member: explicit weights, scalar-per-step recursion written out plainly."""
    layers = list(zip(params[0::2], params[1::2]))
    batch, steps = frames.shape[0], frames.shape[1]
    out = torch.zeros(batch, layers[-1][0].shape[0], dtype=torch.float64)
    for b in range(batch):
        v = [torch.zeros(w.shape[0], dtype=torch.float64) for w, _ in layers]
        total = torch.zeros_like(out[0])
        for t in range(steps):
            h = frames[b, t].flatten().double()
            for i, (w, bias) in enumerate(layers):
                v[i] = beta * v[i] + w @ h + bias
                if i == len(layers) - 1 and readout == "membrane":
                    total += v[i]
                    break
                spikes = (v[i] >= threshold).double()
                v[i] = v[i] - spikes * threshold if reset == "subtract" else v[i] * (1 - spikes)
                h = spikes
                if i == len(layers) - 1:
                    total += spikes
        out[b] = total / steps if readout == "membrane" else total
    return out


def explicit_member_params(es, generation, sigma, member):
    """θ + σ·s·ε for one member, built as full matrices from the raw noise."""
    pair, sign = divmod(member, 2)
    sign = 1.0 - 2.0 * sign
    params = []
    for p, noise in zip(es.params.values(), es.raw_noise(generation, range(pair, pair + 1))):
        if len(noise) == 2:
            eps = noise[0][0] @ noise[1][0].t() / math.sqrt(es.rank)
        else:
            eps = noise[0][0]
        params.append(p + sigma * sign * eps)
    return params


@pytest.fixture
def frames():
    gen = torch.Generator().manual_seed(3)
    return (torch.rand(4, 6, 3, 2, 2, generator=gen) < 0.4).double()  # (B, T, 3·2·2 = 12 inputs)


@pytest.mark.parametrize("rank", [1, 2, None])
@pytest.mark.parametrize("readout,reset", [("membrane", "subtract"), ("spikes", "zero")])
def test_population_forward_equals_explicit_weights(frames, rank, readout, reset):
    net = tiny_net(readout, reset)
    es = EvolutionStrategy(net, population=6, rank=rank, seed=5)
    sigma = 0.3
    got = net.population_logits(frames, lambda pairs: es.ask(2, pairs, sigma), es.pairs, chunk_pairs=2)
    assert got.shape == (6, 4, 3)
    for member in range(6):
        want = reference_logits(explicit_member_params(es, 2, sigma, member), frames, 0.8, 0.5, reset, readout)
        torch.testing.assert_close(got[member], want)
    # the network must actually spike for the comparison to mean anything
    assert 0 < net.spike_trains(frames)[0].mean() < 1


def test_plain_forward_equals_reference(frames):
    net = tiny_net()
    want = reference_logits(list(net.params.values()), frames, 0.8, 0.5, "subtract", "membrane")
    torch.testing.assert_close(net.logits(frames), want)


@pytest.mark.parametrize("rank", [1, 3, None])
def test_es_gradient_matches_brute_force(rank):
    net = tiny_net()
    es = EvolutionStrategy(net, population=8, rank=rank, seed=11)
    sigma = 0.2
    weights = torch.tensor([0.5, -0.2, 0.1, 0.3, -0.5, 0.0, 0.25, -0.45])
    got = es.gradient(4, weights, sigma, chunk_pairs=3)
    theta = list(net.params.values())
    # brute force: ĝ = Σ_i w_i (θ_i − θ) / (N σ²), from explicitly built member parameters
    want = [torch.zeros_like(p) for p in theta]
    for member in range(8):
        for acc, p_i, p in zip(want, explicit_member_params(es, 4, sigma, member), theta):
            acc += weights[member].double() * (p_i - p) / (8 * sigma**2)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_es_gradient_recovers_linear_objective():
    """For f(θ) = c·θ the ES estimate with many members approaches c (an independent check)."""
    net = SpikingNet([6, 4, 3], seed=0)
    es = EvolutionStrategy(net, population=4000, rank=None, seed=2)
    sigma = 0.1
    c = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(net.params.values())]
    raw = es.raw_noise(0, range(es.pairs))
    fitness = torch.zeros(es.population)
    for (eps,), ci in zip(raw, c):
        projection = (eps.flatten(1) * ci.flatten()).sum(1) * sigma
        fitness[0::2] += projection
        fitness[1::2] -= projection
    grads = es.gradient(0, shape_fitness(fitness, "none"), sigma)
    cosine = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in grads]),
                                                   torch.cat([x.flatten() for x in c]), dim=0)
    assert cosine > 0.9


def test_noise_regenerates_identically_from_counters():
    whole = pair_normals(7, 3, 2, range(0, 10), 15)
    torch.testing.assert_close(pair_normals(7, 3, 2, range(4, 7), 15), whole[4:7], rtol=0, atol=0)
    assert not torch.equal(pair_normals(7, 4, 2, range(0, 10), 15), whole)  # generation matters
    assert not torch.equal(pair_normals(7, 3, 1, range(0, 10), 15), whole)  # parameter matters
    assert not torch.equal(pair_normals(8, 3, 2, range(0, 10), 15), whole)  # seed matters
    assert len({counter_seed(0, g, p, k) for g in range(5) for p in range(5) for k in range(5)}) == 125
    assert abs(float(whole.mean())) < 0.3 and 0.7 < float(whole.std()) < 1.3
    # row k is torch.randn from a generator seeded with the cell's counter seed, and nothing else
    gen = torch.Generator().manual_seed(counter_seed(7, 3, 2, 5))
    assert torch.equal(whole[5], torch.randn(15, generator=gen))


def test_centered_ranks_hand_worked_with_nan_last():
    weights = shape_fitness(torch.tensor([3.0, 1.0, 2.0, float("nan")]), "centered_ranks")
    torch.testing.assert_close(weights, torch.tensor([0.5, -1 / 6, 1 / 6, -0.5]))
    weights = shape_fitness(torch.tensor([float("inf"), 1.0, 2.0, float("-inf")]), "centered_ranks")
    assert weights[1] > weights[0] and weights[1] > weights[3] and weights[2] == 0.5


def test_zscore_shaping_and_nonfinite():
    weights = shape_fitness(torch.tensor([1.0, 2.0, 3.0, float("nan")]), "zscore")
    assert torch.isfinite(weights).all()
    assert weights[3] == weights.min() and abs(float(weights.mean())) < 1e-6


@pytest.mark.parametrize("population,rank", [(7, 1), (0, 1), (8, 0), (8, 4)])
def test_strategy_rejects_bad_population_or_rank(population, rank):
    with pytest.raises(SpikerollError):
        EvolutionStrategy(SpikingNet([10, 3, 3]), population, rank)



def test_pool_frames_hand_worked():
    """2x2 average pooling of a 3x3 frame: edge blocks average only the pixels they hold."""
    from spikeroll.nets.model import input_features, pool_frames

    frame = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    got = pool_frames(frame.view(1, 1, 1, 3, 3), 2)[0, 0, 0]
    want = torch.tensor([[3 / 4, 1 / 2], [0.0, 1.0]])
    torch.testing.assert_close(got, want)
    assert input_features((2, 34, 34), 2) == 2 * 17 * 17 and input_features((2, 3, 3), 2) == 8
    net = SpikingNet([8, 4, 3], pool=2)
    assert net.logits(torch.ones(5, 2, 2, 3, 3)).shape == (5, 3)
    with pytest.raises(SpikerollError, match="--pool 1"):
        pool_frames(torch.ones(2, 3, 9), 2)


def test_noise_scale_is_sigma_over_root_rank_bit_for_bit():
    """One σ/√r for the strategy, the module adapter and the gradient's 1/√r: the same float
    expressions as written out here (σ/√r is not σ·(1/√r) in floating point)."""
    from spikeroll.es.strategies import noise_scale, rank_root

    for sigma in (0.05, 0.1, 1 / 3, 0.7):
        assert noise_scale(sigma, None) == sigma
        for rank in (1, 2, 3, 5, 7):
            assert noise_scale(sigma, rank) == sigma / math.sqrt(rank)
            assert rank_root(rank) == math.sqrt(rank)
    net = tiny_net()
    es = EvolutionStrategy(net.params, population=4, rank=3, seed=2)
    raw = es.raw_noise(0, range(2))
    layer = es.ask(0, range(2), 0.1)[0]
    assert torch.equal(layer.weight_a, raw[0][0] * (0.1 / math.sqrt(3)))


def test_float_and_integer_networks_draw_the_same_initial_weights():
    from spikeroll.nets.integer import IntegerNet
    from spikeroll.nets.model import init_parameters

    sizes, gain, seed = [9, 6, 4], 1.7, 5
    gen = torch.Generator().manual_seed(seed)
    expected = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):  # the draws as written before the shared helper
        expected += [(torch.rand(n_out, n_in, generator=gen) * 2 - 1) * (gain / math.sqrt(n_in)), torch.zeros(n_out)]
    for params in (init_parameters(sizes, gain, seed), SpikingNet(sizes, init_gain=gain, seed=seed).params,
                   IntegerNet(sizes, 8, init_gain=gain, seed=seed).params):
        assert list(params) == ["layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"]
        assert all(torch.equal(a, b) for a, b in zip(params.values(), expected))
