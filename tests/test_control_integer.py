"""The integer (Loihi) control policy (neuron = "loihi"): every member's action on its own random
observations against a brute-force integer simulation written here loop by loop in Python integers
(population with int8 noise, and a float policy quantised after training), the observation
quantisation against a hand-worked example, and one-line errors for unsupported settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

gym = pytest.importorskip("gymnasium")

from spikeroll.cli import main  # noqa: E402
from spikeroll.control.config import ControlConfig  # noqa: E402
from spikeroll.control.envs import evaluation_seeds  # noqa: E402
from spikeroll.control.factory import make_policy  # noqa: E402
from spikeroll.control.policy import (  # noqa: E402
    IntegerPolicy,
    input_exponent,
    integer_policy,
    quantise_observations,
)
from spikeroll.control.rollout import evaluate_policy  # noqa: E402
from spikeroll.control.trainer import ControlTrainer, evaluate_control, load_policy, train_control  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.es.strategies import EvolutionStrategy  # noqa: E402

V_MAX = (1 << 23) - 1


def _decay(x: int, keep: int) -> int:
    """sgn(x)·((|x|·keep) >> 12): Loihi's decay, rounded toward zero."""
    d = (abs(x) * keep) >> 12
    return -d if x < 0 else d


def _wrap(u: int) -> int:
    """Lava wraps u once into 24 bits."""
    if u > 1 << 23:
        return u - (1 << 24)
    if u <= -(1 << 23):
        return u + (1 << 24)
    return u


def loihi_forward(layers: list[dict], graded: list[int], T: int) -> tuple[list[int], int]:
    """One sample's readout voltage summed over the T + L steps, and its hidden spike count, one
    neuron and step at a time in Python ints. A layer is plain numbers: q (rows of ints), weight_exp,
    du, dv, vth, bias (per neuron, in voltage units) and optionally noise(h, s) -> the member's
    correction to neuron h's accumulation of input spikes s.

    The graded spikes enter in each of T steps, then L steps of zeros; a layer sees the accumulation
    of step t − 1, shifted by weight_exp and 6; u <- decay(u, du) + a wrapped into 24 bits,
    v <- clip(decay(v, dv) + u + bias, ±(2^23 − 1)), spike where v > vth << 6, then v = 0."""
    n, L, S = len(graded), len(layers), T + len(layers)
    inputs = [graded if t < T else [0] * n for t in range(S)]
    spikes_total = 0
    for i, layer in enumerate(layers):
        q, wexp, bias, noise = layer["q"], layer["weight_exp"], layer["bias"], layer.get("noise")
        keep_u, keep_v, vth = 4096 - (layer["du"] + 1), 4096 - layer["dv"], layer["vth"] << 6
        H = len(q)
        u, v, outputs, readout = [0] * H, [0] * H, [], [0] * H
        for t in range(S):
            prev = inputs[t - 1] if t > 0 else None
            spiked = [0] * H
            for h in range(H):
                acc = 0
                if prev is not None:
                    acc = sum(int(q[h][c]) * int(prev[c]) for c in range(len(prev)))
                    if noise is not None:
                        acc += noise(h, prev)
                a = (acc << wexp if wexp >= 0 else acc >> -wexp) << 6
                u[h] = _wrap(_decay(u[h], keep_u) + a)  # du = 4095: u holds one step's input
                v[h] = max(-V_MAX, min(V_MAX, _decay(v[h], keep_v) + u[h] + bias[h]))
                if i == L - 1:
                    readout[h] += v[h]
                elif v[h] > vth:
                    spiked[h], v[h] = 1, 0
            outputs.append(spiked)
            spikes_total += sum(spiked) if i < L - 1 else 0
        inputs = outputs
    return readout, spikes_total


def _member_noise(b8: np.ndarray, afx: np.ndarray, sign: int):
    """noise(h, s) of `loihi_forward`: (−1)^j·((Σ_r (s·B8)_r·afx[h, r]) >> 12)."""
    def correction(h: int, s: list[int]) -> int:
        xb = [sum(int(s[c]) * int(b8[c, r]) for c in range(len(s))) for r in range(b8.shape[1])]
        return sign * (sum(xb[r] * int(afx[h, r]) for r in range(len(xb))) >> 12)
    return correction


def reference(policy: IntegerPolicy, x: np.ndarray, noise=None) -> tuple[np.ndarray, int]:
    """Readouts (M, E, n_out) of the policy's members on normalised observations x (M, E, n), from
    the docs' rules through `loihi_forward`; and the hidden spike count.

    Graded spike s = clamp(round(x·2^F), ±127); member m = 2k + j runs acc = q·s +
    (−1)^j·((Σ_r (s·B8_k)_r·afx_k[h, r]) >> 12), B8 = clamp(round(16·B), ±127), afx = round(A·2^(8 − k_layer))
    (A of the first layer ÷ 2^F, the graded spike's scale), bias round((b ± e)·2^20 / 2^bexp) << bexp."""
    net, T, F = policy.net, policy.time_bins, policy.exponent
    biases = [p.detach().double().numpy() for p in list(net.params.values())[1::2]]
    M, E, _ = x.shape
    spikes_total = 0
    out = np.zeros((M, E, net.sizes[-1]))
    for m in range(M):
        k, j = divmod(m, 2)
        layers = []
        for i, layer in enumerate(net.layers()):
            b, member_noise = biases[i], None
            if noise is not None:
                b8 = np.clip(np.round(noise[i].weight_b[k].double().numpy() * 16), -127, 127).astype(np.int64)
                scale = 2.0**-F if i == 0 else 1.0
                afx = np.round(noise[i].weight_a[k].double().numpy() * scale * 2.0 ** (8 - layer["k"]))
                member_noise = _member_noise(b8, afx.astype(np.int64), 1 - 2 * j)
                b = b + (1 - 2 * j) * noise[i].bias[k].double().numpy()
            bexp = layer["bias_exp"]
            layers.append({"q": layer["q"].tolist(), "weight_exp": layer["weight_exp"], "du": layer["du"],
                           "dv": layer["dv"], "vth": layer["vth"], "noise": member_noise,
                           "bias": [int(np.clip(np.round(bv * 2.0**20 / 2**bexp), -4096, 4095)) << bexp for bv in b]})
        for e in range(E):
            graded = [max(-127, min(127, int(np.round(float(v) * 2.0**F)))) for v in x[m, e]]
            readout, spikes = loihi_forward(layers, graded, T)
            spikes_total += spikes
            out[m, e] = [np.float32(r / (T * 2.0**20)) for r in readout]
    return out, spikes_total


def _spaces(n_obs: int, n_act: int):
    return gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32), gym.spaces.Discrete(n_act)


@pytest.mark.parametrize("hidden", [[6], [7, 5]])
def test_population_actions_match_integer_reference(hidden):
    cfg = ControlConfig(hidden=hidden, time_bins=5, neuron="loihi", weight_bits=8, reset="zero", init_gain=3.0,
                        population=6, rank=2, seed=3).validate()
    policy = make_policy(cfg, *_spaces(3, 3))
    assert isinstance(policy, IntegerPolicy)
    strategy = EvolutionStrategy(policy.net.params, cfg.population, cfg.rank, cfg.seed)
    noise = strategy.ask(0, range(strategy.pairs), 0.3)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 2, (6, 4, 3)).clip(-5, 5).astype(np.float32))
    got = policy.outputs(x, factors=policy.prepare(noise))
    want, spikes = reference(policy, x.numpy(), noise)
    assert spikes > 0  # the hidden layers spiked: the reference exercised the spiking path
    np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))
    actions = policy.actions(got.reshape(-1, 3))
    np.testing.assert_array_equal(actions, want.reshape(-1, 3).argmax(-1))
    assert len(set(actions.tolist())) > 1  # members' actions differ: not a constant policy
    # members differ by their own noise: the plain policy is not any member
    assert not torch.equal(policy.outputs(x[:1]), got[:1])


def test_quantised_float_policy_matches_integer_reference():
    cfg = ControlConfig(hidden=[8], time_bins=6, init_gain=3.0, seed=1).validate()
    float_policy = make_policy(cfg, *_spaces(4, 2))
    policy = integer_policy(float_policy, 8, cfg.obs_clip)
    assert policy.exponent == 4 and policy.net.bits == 8
    for p, f in zip(policy.net.params.values(), float_policy.net.params.values()):
        assert torch.equal(p, f)  # the same latent parameters, quantised in the forward pass
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 1.5, (1, 7, 4)).astype(np.float32))
    got = policy.outputs(x)
    want, spikes = reference(policy, x.numpy())
    assert spikes > 0
    np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))


def test_observation_quantisation_hand_worked():
    # ±obs_clip must fit a signed 8-bit spike at a power-of-two scale: 127/5 = 25.4 -> 2^4
    assert input_exponent(5.0) == 4
    assert input_exponent(1.0) == 6  # 127 -> 2^6 = 64
    assert input_exponent(0.5) == 7
    x = torch.tensor([0.5, -0.25, 1 / 32, 3 / 32, 5.0, -5.0, 100.0, -0.7])
    # ·16: 8, −4, 0.5 -> 0 (half to even), 1.5 -> 2, 80, −80, 1600 -> 127 (clamped), −11.2 -> −11
    assert quantise_observations(x, 4).tolist() == [8, -4, 0, 2, 80, -80, 127, -11]
    assert quantise_observations(x, 4).dtype == torch.int32


@pytest.mark.parametrize("settings, words", [
    (dict(neuron="loihi", weight_bits=8), "reset"),  # the default subtract reset
    (dict(neuron="loihi", weight_bits=8, reset="zero", strategy="openes"), "openes"),
    (dict(neuron="loihi", weight_bits=8, reset="zero", threshold=0.5), "threshold"),
    (dict(neuron="loihi", weight_bits=3, reset="zero"), "weight_bits=3"),
    (dict(neuron="loihi", reset="zero"), "weight_bits=None"),
    (dict(weight_bits=8), "neuron"),
    (dict(neuron="tpu"), "neuron"),
])
def test_bad_integer_settings_are_one_line_errors(settings, words):
    with pytest.raises(SpikerollError) as caught:
        ControlConfig.for_env("CartPole-v1", **settings).validate()
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_quantising_an_integer_policy_is_refused():
    cfg = ControlConfig(neuron="loihi", weight_bits=8, reset="zero").validate()
    with pytest.raises(SpikerollError, match="already integer"):
        integer_policy(make_policy(cfg, *_spaces(4, 2)), 8, cfg.obs_clip)


def _tiny(**overrides) -> ControlConfig:
    settings = dict(hidden=[4], population=4, episodes=1, generations=2, eval_every=1, val_episodes=1,
                    eval_episodes=2, checkpoint_every=1, target_return=None, max_episode_steps=30)
    return ControlConfig.for_env("CartPole-v1", **{**settings, **overrides})


def test_integer_training_resumes_bit_for_bit(tmp_path):
    cfg = _tiny(neuron="loihi", weight_bits=8, reset="zero")
    whole = train_control(cfg, tmp_path / "whole", progress=False)
    train_control(ControlConfig.from_dict({**cfg.to_dict(), "generations": 1}), tmp_path / "part", progress=False)
    resumed = train_control(cfg, tmp_path / "part", resume=True, progress=False)
    assert resumed["mean_return"] == whole["mean_return"]
    _, policy, _ = load_policy(tmp_path / "whole")
    _, again, _ = load_policy(tmp_path / "part")
    assert isinstance(policy, IntegerPolicy)
    for p, q in zip(policy.net.params.values(), again.net.params.values()):
        assert torch.equal(p, q)
    # a resumed integer run refuses float settings
    with pytest.raises(SpikerollError, match="neuron"):
        train_control(_tiny(), tmp_path / "part", resume=True, progress=False)


def test_eval_quantises_a_float_run(tmp_path):
    train_control(_tiny(), tmp_path / "run", progress=False)
    result = evaluate_control(tmp_path / "run", 2, weight_bits=4)
    assert result["neuron"] == "loihi" and result["weight_bits"] == 4
    _, policy, stats = load_policy(tmp_path / "run")
    quantised = integer_policy(policy, 4, 5.0)
    direct = evaluate_policy(quantised, stats, "CartPole-v1", evaluation_seeds(2))
    assert result["mean_return"] == float(direct.returns.mean())
    cli = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--episodes", "2", "--weight-bits", "4"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["mean_return"] == result["mean_return"]


def test_integer_run_starts_from_a_float_run(tmp_path):
    train_control(_tiny(), tmp_path / "float", progress=False)
    _, float_policy, float_stats = load_policy(tmp_path / "float")
    cfg = _tiny(neuron="loihi", weight_bits=8, reset="zero", init_from=str(tmp_path / "float"))
    trainer = ControlTrainer(cfg, tmp_path / "int8")
    for p, q in zip(trainer.net.params.values(), float_policy.net.params.values()):
        assert torch.equal(p, q)
    assert torch.equal(trainer.stats.sum, float_stats.sum) and torch.equal(trainer.stats.count, float_stats.count)
    trainer.close()
    with pytest.raises(SpikerollError, match="same env and hidden widths"):
        ControlTrainer(_tiny(hidden=[5], init_from=str(tmp_path / "float")), tmp_path / "other")
