"""TorchSpikingPolicy (spikeroll.control.torch_policy), the nn.Module form of the spiking control policy:
the same readouts and actions as SpikingPolicy's own forward (numba kernel and PyTorch paths) on random
observations, a hand-worked 1-neuron case, flat-vector loading, the same episode returns as
spikeroll's evaluation, and loading a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

gym = pytest.importorskip("gymnasium")

from spikeroll.control.config import ControlConfig  # noqa: E402
from spikeroll.control.envs import evaluation_seeds  # noqa: E402
from spikeroll.control.policy import ObsStats, SpikingPolicy  # noqa: E402
from spikeroll.control.rollout import evaluate_policy  # noqa: E402
from spikeroll.control.torch_policy import TorchSpikingPolicy  # noqa: E402
from spikeroll.control.trainer import load_policy, train_control  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.nets.model import SpikingNet  # noqa: E402


def random_policy(sizes, seed, time_bins=8, beta=0.9, reset="subtract", low=None, high=None):
    """A SpikingPolicy with random weights and nonzero biases, and observation statistics that are not
    the identity (so normalisation and the ±5 clip both matter)."""
    gen = torch.Generator().manual_seed(seed)
    net = SpikingNet(sizes, beta=beta, threshold=1.0, reset=reset, readout="membrane", init_gain=3.0, seed=seed)
    for bias in net.params.values():
        if bias.dim() == 1:
            bias.copy_(torch.randn(bias.shape, generator=gen) * 0.5)
    stats = ObsStats(sizes[0])
    obs = np.random.default_rng(seed).normal(1.0, 2.0, size=(500, sizes[0]))
    stats.update(len(obs), obs.sum(0), (obs**2).sum(0))
    return SpikingPolicy(net, time_bins, low, high), stats


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("sizes,reset,beta", [([4, 16, 2], "subtract", 0.9), ([6, 12, 8, 3], "zero", 0.8),
                                               ([8, 32, 4], "subtract", 1.0)])
def test_same_readouts_and_actions_as_spikeroll_forward(sizes, reset, beta, use_kernel):
    policy, stats = random_policy(sizes, seed=len(sizes) + sizes[0], beta=beta, reset=reset)
    policy.use_kernel = use_kernel
    obs = np.random.default_rng(1).normal(1.0, 6.0, size=(300, sizes[0])).astype(np.float32)  # some beyond ±5σ
    expected = policy.outputs(stats.normalise(obs)[None])[0]
    module = TorchSpikingPolicy.from_policy(policy, stats)
    with torch.no_grad():
        got = module.readout(torch.from_numpy(obs))
        actions = module.act(torch.from_numpy(obs)).numpy()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(actions, policy.actions(expected))
    assert len(set(actions.tolist())) > 1  # the random policy is not constant, so the comparison means something


def test_box_actions_match():
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    policy, stats = random_policy([3, 16, 2], seed=5, low=low, high=high)
    obs = np.random.default_rng(2).normal(size=(100, 3)).astype(np.float32)
    expected = policy.actions(policy.outputs(stats.normalise(obs)[None])[0])
    module = TorchSpikingPolicy.from_policy(policy, stats)
    with torch.no_grad():
        got = module(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert (got >= low).all() and (got <= high).all()


def test_one_neuron_by_hand():
    """sizes [1, 1, 1], T = 3, β = 0.5, θ = 1; obs normalised with mean 1, std 2, clipped at ±5.

    obs = 2: x = 0.5, I = 1·0.5 + 0.2 = 0.7 in every bin; v = 0.7 (no spike), 0.35 + 0.7 = 1.05 (spike,
    v → 0.05), 0.025 + 0.7 = 0.725 (no spike): spikes 0, 1, 0. Readout I = 3·s + 0.5 = 0.5, 3.5, 0.5;
    u = 0.5, 0.25 + 3.5 = 3.75, 1.875 + 0.5 = 2.375; mean 6.625 / 3.
    obs = 101: x = 50 clipped to 5, I = 5.2: v = 5.2, 2.1 + 5.2, ...: a spike every bin; readout
    I = 3.5 each bin, u = 3.5, 5.25, 6.125; mean 14.875 / 3.
    """
    module = TorchSpikingPolicy([1, 1, 1], time_bins=3, beta=0.5, threshold=1.0)
    with torch.no_grad():
        module.layers[0].weight.fill_(1.0)
        module.layers[0].bias.fill_(0.2)
        module.layers[1].weight.fill_(3.0)
        module.layers[1].bias.fill_(0.5)
        module.obs_mean.fill_(1.0)
        module.obs_std.fill_(2.0)
        out = module(torch.tensor([[2.0], [101.0]]))
    torch.testing.assert_close(out, torch.tensor([[6.625 / 3], [14.875 / 3]]))
    module.reset = "zero"  # obs = 2 again: v → 0 after the spike, then 0.7: the same spikes 0, 1, 0
    with torch.no_grad():
        torch.testing.assert_close(module(torch.tensor([2.0])), torch.tensor([6.625 / 3]))


def test_flat_vector_is_spikeroll_parameter_order():
    policy, stats = random_policy([4, 16, 2], seed=3)
    module = TorchSpikingPolicy.from_policy(policy, stats)
    flat = torch.cat([p.flatten() for p in policy.net.params.values()])
    assert torch.equal(parameters_to_vector(module.parameters()), flat)
    other = TorchSpikingPolicy([4, 16, 2])
    other.obs_mean.copy_(module.obs_mean)
    other.obs_std.copy_(module.obs_std)
    vector_to_parameters(flat, other.parameters())
    x = torch.randn(50, 4)
    with torch.no_grad():
        assert torch.equal(other(x), module(x))


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(SpikerollError, match="hidden"):
        TorchSpikingPolicy([4, 2])
    with pytest.raises(SpikerollError, match="reset"):
        TorchSpikingPolicy([4, 8, 2], reset="soft")


def test_same_episode_returns_as_spikeroll_evaluation():
    """Played greedily env by env through the module (gym.make, one observation at a time), a random
    CartPole policy whose actions alternate scores the same per-seed returns as spikeroll's batched
    evaluation (EnvBatch, numba kernel)."""
    policy, stats = random_policy([4, 16, 2], seed=4)
    seeds = evaluation_seeds(8)
    expected = evaluate_policy(policy, stats, "CartPole-v1", seeds).returns[0]
    module = TorchSpikingPolicy.from_policy(policy, stats)
    env = gym.make("CartPole-v1")
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                action = int(module.act(torch.as_tensor(obs)))
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    assert returns == expected.tolist()
    assert len(set(returns)) > 3  # episodes of different lengths: the actions depend on the observations


def test_from_run_loads_the_checkpoint_and_statistics(tmp_path):
    cfg = ControlConfig.for_env("CartPole-v1", hidden=[8], population=8, generations=2, eval_every=2,
                                target_return=None)
    train_control(cfg, tmp_path, progress=False)
    _, policy, stats = load_policy(tmp_path)
    module = TorchSpikingPolicy.from_run(tmp_path)
    assert module.obs_norm and not torch.equal(module.obs_std, torch.ones(4))  # the run's statistics came along
    obs = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    with torch.no_grad():
        got = module.readout(torch.from_numpy(obs))
    torch.testing.assert_close(got, policy.outputs(stats.normalise(obs)[None])[0], rtol=1e-5, atol=1e-5)
