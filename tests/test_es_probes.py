"""benchmarks/es_probes.py: the per-sample-credit estimate of the `align` probe, worked by hand."""

import torch


def test_per_sample_estimate_by_hand(benchmark_script):
    estimate = benchmark_script("es_probes").per_sample_estimate
    # one pair, one sample, T = 2: x_1 = (1, 1, 2), x_2 = (0, 1, 0); b = (3, 0, 1), a = (1, 2); Δ = 5
    # b·x_1 = 5, b·x_2 = 0, Σ_t |x_t|² = 6 + 1 = 7 -> 5/7·(5·x_1 + 0·x_2) = (25/7)·(1, 1, 2), times a
    x = torch.tensor([[[1.0, 1.0, 2.0]], [[0.0, 1.0, 0.0]]])
    got = estimate(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0, 1.0]]), torch.tensor([[5.0]]), x)
    want = torch.tensor([[1.0], [2.0]]) * (25 / 7) * torch.tensor([[1.0, 1.0, 2.0]])
    torch.testing.assert_close(got, want)


def test_per_sample_estimate_averages_pairs_and_sums_samples(benchmark_script):
    estimate = benchmark_script("es_probes").per_sample_estimate
    # two pairs, two samples, T = 1: a_1 = (1), a_2 = (-1); b_1 = (1, 0), b_2 = (0, 1)
    # x_a = (1, 0), x_b = (1, 1); Δ = [[1, 2], [3, 4]]
    # pair 1: sample a: 1·1/1·(1, 0) = (1, 0); sample b: 2·1/2·(1, 1) = (1, 1)  -> +1·(2, 1)
    # pair 2: sample a: 3·0/1·(1, 0) = 0;      sample b: 4·1/2·(1, 1) = (2, 2)  -> −1·(2, 2)
    # mean over the 2 pairs: ((2, 1) − (2, 2)) / 2 = (0, −0.5)
    x = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    got = estimate(torch.tensor([[1.0], [-1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                   torch.tensor([[1.0, 2.0], [3.0, 4.0]]), x)
    torch.testing.assert_close(got, torch.tensor([[0.0, -0.5]]))


def test_readout_features_give_the_networks_logits(benchmark_script):
    """The refit probe's features: features·Wᵀ + b·Σ_t w_t must be the network's own logits."""
    from spikeroll.nets.model import SpikingNet

    probes = benchmark_script("es_probes")
    net = SpikingNet([12, 9, 7, 4], beta=0.8, threshold=0.5, init_gain=3.0, seed=2)
    frames = (torch.rand(5, 6, 12, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    features = probes.readout_features(net, frames)
    assert 0 < float(features.count_nonzero()) < features.numel()  # the last hidden layer spikes, not always
    steps = torch.arange(6, 0, -1, dtype=torch.float32)  # w_t = (1 − β^(T−t)) / ((1 − β)·T), by hand
    bias_scale = float(((1 - 0.8**steps) / (0.2 * 6)).sum())
    got = features @ net.params["layer2.weight"].t() + bias_scale * net.params["layer2.bias"]
    torch.testing.assert_close(got, net.logits(frames))


def test_fit_readout_separates_separable_points(benchmark_script):
    """Four points that a linear readout separates, started from a readout that gets them all wrong."""
    fit = benchmark_script("es_probes").fit_readout
    features = torch.tensor([[1.0, 0.0], [2.0, 0.5], [0.0, 1.0], [0.5, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    wrong = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert bool(((features @ wrong.t()).argmax(1) != labels).all())
    w, b = fit(features, labels, wrong, torch.zeros(2), 1.0, 1e-3)
    assert torch.equal((features @ w.t() + b).argmax(1), labels)
