"""Spiking controllers for Gymnasium tasks (spikeroll.control): the per-member population forward against
brute-force per-member weights, the run directory and a bit-identical resume, one-line errors for bad
input, and the episode seeds as a pure function of (seed, generation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

from spikeroll.control.config import ENV_DEFAULTS, ControlConfig  # noqa: E402
from spikeroll.control.envs import (  # noqa: E402
    TEST_SEED0,
    TRAIN_SEEDS,
    VAL_SEED0,
    EnvBatch,
    episode_seeds,
    evaluation_seeds,
    make_env,
    validation_seeds,
)
from spikeroll.control.policy import ObsStats, SpikingPolicy, member_weights  # noqa: E402
from spikeroll.control.trainer import (  # noqa: E402
    ControlTrainer,
    evaluate_control,
    folded_network,
    is_control_run,
    load_policy,
    play,
    train_control,
)
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.es.strategies import EvolutionStrategy  # noqa: E402
from spikeroll.nets.model import SpikingNet  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "control"


def brute_force_outputs(weights, biases, x, T, beta, threshold):
    """One member's readout, written out: a constant current into LIF layers (subtract reset), a leaky
    readout u ← β·u + I averaged over T bins; x (E, in)."""
    h = [x] * T  # per time bin
    for i, (w, b) in enumerate(zip(weights, biases)):
        currents = [hi @ w.t() + b for hi in h]
        if i == len(weights) - 1:
            u, total = torch.zeros_like(currents[0]), torch.zeros_like(currents[0])
            for c in currents:
                u = beta * u + c
                total = total + u
            return total / T
        v, spikes = torch.zeros_like(currents[0]), []
        for c in currents:
            v = beta * v + c
            s = (v >= threshold).to(v.dtype)
            v = v - s * threshold
            spikes.append(s)
        h = spikes
    raise AssertionError


@pytest.mark.parametrize("rank", [1, 2, None])
@pytest.mark.parametrize("use_kernel", [True, False])
def test_population_forward_equals_per_member_weight_copies(rank, use_kernel):
    torch.manual_seed(0)
    sizes, T, beta, threshold, sigma = [5, 12, 9, 3], 6, 0.85, 0.7, 0.3
    net = SpikingNet(sizes, beta=beta, threshold=threshold, init_gain=2.0, seed=3)
    for name, p in net.params.items():  # non-zero biases, so the bias noise and the readout's Σw·b are exercised
        if name.endswith("bias"):
            p.copy_(torch.randn_like(p) * 0.3)
    policy = SpikingPolicy(net, T)
    policy.use_kernel = use_kernel
    strategy = EvolutionStrategy(net.params, population=6, rank=rank, seed=11)
    generation, pairs = 4, range(3)
    noise = strategy.ask(generation, pairs, sigma)
    x = torch.randn(6, 4, 5) * 2  # every member has its own observations
    population = policy.outputs(x, noise)
    assert population.shape == (6, 4, 3)

    raw = strategy.raw_noise(generation, pairs)  # unscaled: (A, B) per weight, (E,) per bias
    for member in range(6):
        k, s = member // 2, (1.0, -1.0)[member % 2]
        weights, biases = [], []
        for (w, b), w_noise, b_noise in zip(net.layer_params(), raw[0::2], raw[1::2]):
            if rank is None:
                weights.append(w + sigma * s * w_noise[0][k])
            else:
                a_k, b_k = w_noise[0][k], w_noise[1][k]
                weights.append(w + sigma * s * (a_k @ b_k.t()) / math.sqrt(rank))
            biases.append(b + sigma * s * b_noise[0][k])
        expected = brute_force_outputs(weights, biases, x[member], T, beta, threshold)
        torch.testing.assert_close(population[member], expected, atol=1e-4, rtol=1e-4)
        # and the test helper that spells out one member's weights agrees
        for layer, ((w, b), layer_noise) in enumerate(zip(net.layer_params(), noise)):
            wm, bm = member_weights(w, b, layer_noise, member)
            torch.testing.assert_close(wm, weights[layer], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(bm, biases[layer], atol=1e-6, rtol=1e-5)
    # the plain policy is the same code with no noise, row by row
    plain = policy.outputs(x[:2])
    expected = brute_force_outputs([w for w, _ in net.layer_params()], [b for _, b in net.layer_params()],
                                   x[1], T, beta, threshold)
    torch.testing.assert_close(plain[1], expected, atol=1e-4, rtol=1e-4)


def test_kernel_and_pytorch_lif_give_the_same_bits():
    net = SpikingNet([4, 16, 8, 2], beta=0.9, threshold=1.0, init_gain=3.0, seed=0)
    policy = SpikingPolicy(net, 8)
    strategy = EvolutionStrategy(net.params, population=8, rank=1, seed=0)
    noise = strategy.ask(0, range(4), 0.1)
    x = torch.randn(8, 3, 4)
    fast = policy.outputs(x, noise)
    policy.use_kernel = False
    assert torch.equal(fast, policy.outputs(x, noise))


def test_actions_discrete_argmax_and_box_scaled_to_bounds():
    net = SpikingNet([3, 4, 2], seed=0)
    discrete = SpikingPolicy(net, 4)
    assert discrete.actions(torch.tensor([[0.1, 0.3], [2.0, -1.0]])).tolist() == [1, 0]
    shifted = SpikingPolicy(net, 4, start=-1)  # Discrete(2, start=-1): actions -1 and 0
    assert shifted.actions(torch.tensor([[0.1, 0.3], [2.0, -1.0]])).tolist() == [0, -1]
    box = SpikingPolicy(net, 4, low=np.array([-2.0, 0.0]), high=np.array([2.0, 1.0]))
    acts = box.actions(torch.tensor([[0.0, 0.0], [50.0, -50.0]]))
    np.testing.assert_allclose(acts, [[0.0, 0.5], [2.0, 0.0]], atol=1e-6)


def test_obs_stats_normalise_clip_and_round_trip():
    stats = ObsStats(2, clip=3.0)
    torch.testing.assert_close(stats.normalise(np.array([[0.5, -0.5]], np.float32)), torch.tensor([[0.5, -0.5]]))
    obs = np.array([[10.0, 1.0], [12.0, 3.0], [14.0, 5.0]])
    stats.update(len(obs), obs.sum(0), (obs**2).sum(0))
    mean, std = stats.mean_std()
    assert abs(float(mean[0]) - 36 / 3.01) < 1e-4
    assert float(stats.normalise(np.array([[1e6, 0.0]], np.float32))[0, 0]) == 3.0  # clipped
    stats.freeze()
    stats.update(1, np.array([100.0, 100.0]), np.array([1e4, 1e4]))
    expected = np.clip((obs.astype(np.float32) - mean.numpy()) / std.numpy(), -3.0, 3.0)
    assert torch.equal(stats.normalise(obs.astype(np.float32)), torch.from_numpy(expected))  # frozen
    copy = ObsStats(2, clip=3.0)
    copy.load_state_dict(stats.state_dict())
    stats.unfreeze()
    assert torch.equal(copy.normalise(obs.astype(np.float32)), stats.normalise(obs.astype(np.float32)))
    off = ObsStats(2, enabled=False)
    off.update(3, obs.sum(0), (obs**2).sum(0))
    assert torch.equal(off.normalise(obs.astype(np.float32)), torch.from_numpy(obs.astype(np.float32)))


def test_seeds_are_a_pure_function_of_seed_and_generation():
    a = episode_seeds(7, 3, 5)
    assert a.dtype == torch.long and a.shape == (5,)
    assert torch.equal(a, episode_seeds(7, 3, 5))
    assert torch.equal(a[:3], episode_seeds(7, 3, 3))  # episode e's seed does not depend on how many are played
    assert not torch.equal(a, episode_seeds(7, 4, 5)) and not torch.equal(a, episode_seeds(8, 3, 5))
    assert int(a.min()) >= 0 and int(a.max()) < TRAIN_SEEDS
    val, test = set(validation_seeds(100)), set(evaluation_seeds(100))
    assert not val & test and min(val) >= VAL_SEED0 >= TRAIN_SEEDS and min(test) >= TEST_SEED0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])  # vector entry point; a list of envs
def test_every_member_starts_episode_e_where_a_single_env_seeded_with_it_starts(env_id):
    seeds = [5, 17]
    batch = EnvBatch(env_id, 3 * len(seeds))
    assert (batch.vector is not None) == (env_id == "CartPole-v1")
    obs = batch.reset([seeds[j % 2] for j in range(6)])
    single = gym.make(env_id)
    for j in range(6):
        expected, _ = single.reset(seed=seeds[j % 2])
        np.testing.assert_array_equal(obs[j], expected)
    batch.close()


def small_cartpole(**overrides) -> ControlConfig:
    values = dict(hidden=[8], time_bins=4, population=8, episodes=2, generations=4, eval_every=2,
                  checkpoint_every=2, val_episodes=3, eval_episodes=5, max_episode_steps=40, target_return=None)
    return ControlConfig.for_env("CartPole-v1", **{**values, **overrides})


class Interrupt(Exception):
    pass


def metric_lines(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        line.pop("seconds")
    return lines


def policy_outputs(run_dir, x):
    _, policy, _ = load_policy(run_dir)
    return policy.outputs(x[None])[0]


def test_short_cartpole_run_writes_its_run_directory_and_resume_is_bit_identical(tmp_path):
    cfg = small_cartpole()
    report = train_control(cfg, tmp_path / "full", progress=False)
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "report.json"):
        assert (tmp_path / "full" / name).exists()
    assert report["generations"] == 4 and report["eval_episodes"] == 5 and report["env_steps"] > 0
    assert json.loads((tmp_path / "full" / "report.json").read_text())["mean_return"] == report["mean_return"]
    full = metric_lines(tmp_path / "full" / "metrics.jsonl")
    assert [m["generation"] for m in full] == [0, 1, 2, 3]
    assert {"fitness_mean", "fitness_max", "mean_return", "sigma", "env_steps"} <= set(full[0])
    assert "val_return" in full[1] and "val_return" not in full[0]
    assert full[-1]["env_steps"] == report["env_steps"] and full[0]["env_steps"] < full[1]["env_steps"]
    assert json.loads((tmp_path / "full" / "config.json").read_text()) == cfg.to_dict()

    calls = []

    def fitness_then_crash(returns, lengths):  # the mean return, until the 4th generation (index 3)
        calls.append(1)
        if len(calls) == 4:
            raise Interrupt
        return returns.mean(1)

    with pytest.raises(Interrupt):
        train_control(cfg, tmp_path / "cut", progress=False, fitness_fn=fitness_then_crash)
    assert not (tmp_path / "cut" / "report.json").exists()
    assert len(metric_lines(tmp_path / "cut" / "metrics.jsonl")) == 3  # generation 2 was logged after its checkpoint
    with pytest.raises(SpikerollError, match="--resume"):
        train_control(cfg, tmp_path / "cut", progress=False)
    resumed = train_control(cfg, tmp_path / "cut", resume=True, progress=False)
    assert metric_lines(tmp_path / "cut" / "metrics.jsonl") == full
    assert {k: v for k, v in resumed.items() if not k.endswith("seconds")} == \
        {k: v for k, v in report.items() if not k.endswith("seconds")}
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(x, y) for x, y in zip(a["params"], b["params"]))
    assert all(torch.equal(a["obs_stats"][k], b["obs_stats"][k]) for k in a["obs_stats"])
    assert a["env_steps"] == b["env_steps"] and a["generation"] == b["generation"] == 4

    cfg_folded, folded = folded_network(tmp_path / "full")  # normalisation folded into the first layer
    _, _, stats = load_policy(tmp_path / "full")
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 0.3
    frames = torch.from_numpy(obs)[:, None, :].expand(16, cfg.time_bins, 4).contiguous()
    torch.testing.assert_close(folded.logits(frames), policy_outputs(tmp_path / "full", stats.normalise(obs)),
                               atol=1e-4, rtol=1e-4)

    result = evaluate_control(tmp_path / "full", episodes=5)
    assert result["mean_return"] == report["mean_return"] and result["episodes"] == 5
    assert is_control_run(tmp_path / "full") and not is_control_run(tmp_path / "nowhere")
    cfg_back, policy, _ = load_policy(tmp_path / "full")
    assert cfg_back == cfg and policy.net.sizes == [4, 8, 2]
    with pytest.raises(SpikerollError, match="incompatible config"):
        ControlTrainer(small_cartpole(hidden=[6]), tmp_path / "full", resume=True)


def test_play_writes_a_gif(tmp_path):
    pytest.importorskip("pygame")
    pytest.importorskip("PIL")
    train_control(small_cartpole(generations=1, eval_episodes=1), tmp_path / "run", progress=False)
    out = play(tmp_path / "run", tmp_path / "episode.gif", seed=3)
    assert Path(out["path"]).stat().st_size > 0 and out["frames"] == out["steps"] + 1


def test_continuous_actions_train_one_generation(tmp_path):
    cfg = ControlConfig(env="Pendulum-v1", hidden=[8], time_bins=4, population=4, generations=1, eval_every=1,
                        val_episodes=1, eval_episodes=1, max_episode_steps=20)
    report = train_control(cfg, tmp_path / "pendulum", progress=False)
    assert report["generations"] == 1 and np.isfinite(report["mean_return"])


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def register(name: str, entry_point) -> str:
    env_id = f"SpikerollTest/{name}-v0"
    if env_id not in gym.envs.registry:
        gym.register(env_id, entry_point=entry_point)
    return env_id


class SpacesEnv(gym.Env):
    def __init__(self, observation_space=None, action_space=None):
        self.observation_space = observation_space or gym.spaces.Box(-1, 1, (3,))
        self.action_space = action_space or gym.spaces.Discrete(2)


def needs_box2d(**kw):
    raise gym.error.DependencyNotInstalled('Box2D is not installed, you can install it by run `pip install swig` '
                                           'followed by `pip install "gymnasium[box2d]"`')


def needs_mujoco(**kw):
    raise ImportError("No module named 'mujoco'")


@pytest.mark.parametrize("make, fragment", [
    (lambda: make_env("NoSuchEnv-v0"), "unknown env id"),
    (lambda: make_env("CartPole-v99"), "unknown env id"),
    (lambda: make_env(register("MultiDiscrete", lambda **kw: SpacesEnv(
        action_space=gym.spaces.MultiDiscrete([2, 3])))), "MultiDiscrete action space"),
    (lambda: make_env(register("TupleAction", lambda **kw: SpacesEnv(
        action_space=gym.spaces.Tuple((gym.spaces.Discrete(2),))))), "Tuple action space"),
    (lambda: make_env(register("DictObs", lambda **kw: SpacesEnv(
        observation_space=gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})))), "Dict observation space"),
    (lambda: make_env(register("UnboundedBox", lambda **kw: SpacesEnv(
        action_space=gym.spaces.Box(-np.inf, np.inf, (2,))))), "Box action space"),
    (lambda: make_env(register("NeedsBox2D", needs_box2d)), "pip install 'spikeroll[control]'"),
    (lambda: make_env(register("NeedsMujoco", needs_mujoco)), "gymnasium[mujoco]"),
    (lambda: make_env(register("Broken", lambda **kw: 1 / 0)), "could not be made (ZeroDivisionError"),
    (lambda: train_control(ControlConfig(env="NoSuchEnv-v0"), "/nonexistent/never-made", progress=False),
     "unknown env id"),
])
def test_bad_input_is_a_one_line_error(make, fragment):
    with pytest.raises(SpikerollError) as exc:
        make()
    assert fragment in one_line(exc)


def test_missing_gymnasium_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gymnasium", None)  # `import gymnasium` now fails
    with pytest.raises(SpikerollError) as exc:
        make_env("CartPole-v1")
    assert "pip install 'spikeroll[control]'" in one_line(exc)


@pytest.mark.parametrize("values, fragment", [
    (dict(population=7), "population=7"),
    (dict(strategy="bptt"), "unknown strategy"),
    (dict(hidden=[0]), "hidden"),
    (dict(sigma=-1.0), "sigma"),
    (dict(episodes=0), "episodes"),
    (dict(eval_episodes=0), "eval_episodes"),
    (dict(rank=0), "rank"),
    (dict(lr=float("nan")), "lr must be a number"),
    (dict(hidden="32"), "hidden must be"),
    (dict(obs_norm=1), "obs_norm must be true or false"),
    (dict(colour="red"), "unknown control setting"),
])
def test_bad_settings_are_one_line_errors(values, fragment):
    with pytest.raises(SpikerollError) as exc:
        ControlConfig.from_dict({"env": "CartPole-v1", **values}).validate()
    assert fragment in one_line(exc)


def test_rank_above_the_policy_shapes_is_refused(tmp_path):
    with pytest.raises(SpikerollError) as exc:
        ControlTrainer(ControlConfig(env="CartPole-v1", rank=3), tmp_path / "r")  # readout is 2 x 16
    one_line(exc)


@pytest.mark.parametrize("env_id", sorted(ENV_DEFAULTS))
def test_shipped_configs_are_the_env_defaults(env_id):
    cfg = ControlConfig.from_file(CONFIGS / f"{env_id}.toml").validate()
    assert cfg == ControlConfig.for_env(env_id)


def test_control_runs_with_its_thread_count_and_restores_the_callers(tmp_path):
    """A control run trains on cfg.threads torch threads (the report says so) and leaves the
    caller's thread count as it was; threads = 0 is a one-line error."""
    import torch

    from spikeroll.control.config import ControlConfig
    from spikeroll.control.trainer import train_control
    from spikeroll.errors import SpikerollError

    before = torch.get_num_threads()
    report = train_control(ControlConfig.for_env("CartPole-v1", generations=1, population=8, eval_episodes=2,
                                                 val_episodes=2, threads=1), tmp_path / "run", progress=False)
    assert report["torch_threads"] == 1
    assert torch.get_num_threads() == before
    with pytest.raises(SpikerollError, match="threads=0 must be >= 1"):
        ControlConfig.for_env("CartPole-v1", threads=0).validate()
