"""Control rollouts on a real local Ray cluster (no mocks): `--env ... --workers K` gives the bits of
the run in one process, per member, for a whole run and across a resume on another worker count.

The reference is always the same settings played in this process (RolloutEvaluator, workers=0).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("gymnasium")

from spikeroll.api import control_config  # noqa: E402
from spikeroll.control.config import ControlConfig  # noqa: E402
from spikeroll.control.envs import episode_seeds, make_env  # noqa: E402
from spikeroll.control.factory import make_policy  # noqa: E402
from spikeroll.control.policy import ObsStats  # noqa: E402
from spikeroll.control.remote import UNIT_PAIRS, RolloutRayEvaluator  # noqa: E402
from spikeroll.control.rollout import RolloutEvaluator  # noqa: E402
from spikeroll.control.trainer import load_control_checkpoint, train_control  # noqa: E402
from spikeroll.es.strategies import EvolutionStrategy  # noqa: E402
from spikeroll.training.distributed import start_local_ray  # noqa: E402

# a short CartPole run: 20 pairs, so units of 8, 8 and 4 pairs (a smaller last unit), 2 episodes a member
SETTINGS = dict(hidden=[8], population=40, episodes=2, generations=4, eval_every=2, val_episodes=2,
                eval_episodes=2, checkpoint_every=2, target_return=None, seed=5)


def config(**kw) -> ControlConfig:
    """CartPole's defaults with SETTINGS and `kw`."""
    return ControlConfig.for_env("CartPole-v1", **{**SETTINGS, **kw})


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 logical CPUs), on loopback as `--workers` starts it; each run
    starts and stops its own worker actors on it."""
    start_local_ray(2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run in this process that every distributed run must reproduce."""
    out = tmp_path_factory.mktemp("local")
    train_control(config(), out, progress=False)
    return out


def run_metrics(run_dir):
    """metrics.jsonl without the wall-clock seconds."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def assert_identical(run_dir, reference_dir):
    """Every metric, every final parameter and the observation statistics equal the reference's."""
    assert run_metrics(run_dir) == run_metrics(reference_dir)  # every fitness, return, σ, lr and env step count
    got, want = (load_control_checkpoint(Path(d) / "checkpoint.pt") for d in (run_dir, reference_dir))
    for a, b in zip(got["params"], want["params"], strict=True):
        assert torch.equal(a, b)
    for key in want["obs_stats"]:
        assert torch.equal(got["obs_stats"][key], want["obs_stats"][key])
    report = json.loads((Path(run_dir) / "report.json").read_text())
    assert report["mean_return"] == json.loads((Path(reference_dir) / "report.json").read_text())["mean_return"]


def evaluator_pieces(cfg):
    """A fresh policy, strategy, statistics and local RolloutEvaluator for `cfg` (as the trainer builds them)."""
    probe = make_env(cfg.env)
    policy = make_policy(cfg, probe.observation_space, probe.action_space)
    probe.close()
    strategy = EvolutionStrategy(policy.net.params, cfg.population, cfg.rank, cfg.seed)
    stats = ObsStats(policy.net.sizes[0], cfg.obs_norm, cfg.obs_clip)
    return RolloutEvaluator(policy, strategy, stats, cfg.env)


def test_every_member_and_the_observation_sums_match_the_local_evaluator(local_ray):
    """Per member (not only the means): fitness, mean return, returns, lengths and every env's
    observation sums, with statistics that normalise (not the starting identity)."""
    cfg = config(workers=2, threads_per_worker=1)
    local, remote_local = evaluator_pieces(cfg), evaluator_pieces(cfg)
    remote = RolloutRayEvaluator(remote_local, cfg)
    assert cfg.population // 2 % UNIT_PAIRS, "the settings should leave a smaller last unit"
    try:
        for generation in (0, 1):
            seeds = episode_seeds(cfg.seed, generation, cfg.episodes)
            want = local.population_fitness(generation, 0.1, None, seeds)
            got = remote.population_fitness(generation, 0.1, None, seeds)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
            a, b = remote_local.last, local.last
            for key in ("returns", "lengths", "env_obs_sum", "env_obs_sumsq"):
                assert np.array_equal(getattr(a, key), getattr(b, key)), key
            assert np.array_equal(a.obs_sum, b.obs_sum) and a.obs_count == b.obs_count
            for stats in (local.stats, remote_local.stats):  # the next generation normalises with these
                stats.update(b.obs_count, b.obs_sum, b.obs_sumsq)
        assert remote.last["nodes"] == 1 and len(remote.workers) == 2
    finally:
        remote.close()
        local.close()


def test_run_on_two_workers_equals_the_local_run(local_ray, reference, tmp_path):
    """`--workers 2`: the local run's parameters, statistics, metrics and report, bit for bit."""
    train_control(config(workers=2, threads_per_worker=1), tmp_path, progress=False)
    assert_identical(tmp_path, reference)


def test_resume_of_a_worker_run_in_this_process(local_ray, reference, tmp_path):
    """Two generations on 2 workers, then --resume with --workers 0: the uninterrupted local run's bits."""
    train_control(config(workers=2, threads_per_worker=1, generations=2), tmp_path, progress=False)
    train_control(config(workers=0), tmp_path, resume=True, progress=False)
    assert_identical(tmp_path, reference)


def test_the_command_line_takes_the_worker_options():
    """--workers, --threads-per-worker, --ray-address and --worker-timeout reach a control config."""
    cfg = control_config("CartPole-v1", None, None, {"workers": 2, "threads_per_worker": 1,
                                                     "ray_address": "auto", "worker_timeout": 5.0})
    assert (cfg.workers, cfg.threads_per_worker, cfg.ray_address, cfg.worker_timeout) == (2, 1, "auto", 5.0)


def train_cli(*args, prelude=""):
    """`spikeroll train --env CartPole-v1 ARGS` in a fresh interpreter (after `prelude`)."""
    script = f"{prelude}\nimport sys\nfrom spikeroll.cli import main\nmain(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", script, "train", "--env", "CartPole-v1", "--generations", "1",
                           "--quiet", *args], capture_output=True, text=True, timeout=240)


def test_unreachable_address_is_a_one_line_error(tmp_path):
    """Nothing listens at the address: one line at once (ray.init would retry for minutes)."""
    result = train_cli("--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot join the Ray cluster at '127.0.0.1:9' (nothing answers at 127.0.0.1:9")
    assert lines[-1].endswith("or fix --ray-address")


def test_without_ray_workers_get_a_one_line_error_naming_the_extra(tmp_path):
    """An install without the `distributed` extra (import ray fails): one line naming it."""
    result = train_cli("--workers", "2", "--out", str(tmp_path / "run"), prelude="sys_modules = __import__('sys')"
                       ".modules; sys_modules['ray'] = None")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --workers/--ray-address need Ray, which is not installed; pip install 'spikeroll[distributed]'")
    assert not (tmp_path / "run").exists()  # refused before the run directory was made
