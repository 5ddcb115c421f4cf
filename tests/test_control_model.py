"""A user's nn.Module as the control policy (`spikeroll train --env ID --model FILE.py:FACTORY`):
every member's outputs from the per-member population forward against a float64 deep copy of the
module with that member's perturbation written into its weights, run on that member's own
observations; a short CartPole run through the CLI with examples/snntorch_cartpole.py that resumes
bit-identically; and the one-line errors."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

pytest.importorskip("gymnasium")
snn = pytest.importorskip("snntorch")

from spikeroll.cli import main  # noqa: E402
from spikeroll.control.config import ControlConfig  # noqa: E402
from spikeroll.control.module_policy import ModulePolicy  # noqa: E402
from spikeroll.control.trainer import ControlTrainer  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.modules import EGGROLL  # noqa: E402
from spikeroll.modules.checks import reset_state  # noqa: E402
from spikeroll.modules.net import ModuleNet, load_factory  # noqa: E402

EXAMPLE = f"{Path(__file__).resolve().parents[1] / 'examples' / 'snntorch_cartpole.py'}:make_policy"


def spike(v):  # snnTorch's Heaviside returns float32; keep the module's dtype (float64 here)
    return (v > 0).to(v.dtype)


def float64_example(obs_dim=4, action_dim=2):
    torch.manual_seed(1)
    module = load_factory(EXAMPLE, obs_dim, action_dim).double()
    for m in module.modules():
        if isinstance(m, snn.Leaky):
            m.spike_grad = spike
    return module


def member_copy(es: EGGROLL, generation: int, member: int) -> nn.Module:
    """The module with member `member`'s weights written out: W + s·σ·A·Bᵀ/√r (θ + s·σ·E otherwise)."""
    k, s = divmod(member, 2)
    s = 1.0 - 2.0 * s
    raw = es.strategy.raw_noise(generation, range(k, k + 1))
    copied = copy.deepcopy(es.model)
    params = dict(copied.named_parameters())
    for name, p, noise in zip(es.names, es.params, raw):
        if len(noise) == 2:
            eps = (noise[0][0] @ noise[1][0].t() / math.sqrt(es.rank)).reshape(p.shape)
        else:
            eps = noise[0][0].reshape(p.shape)
        with torch.no_grad():
            params[name].add_(s * es.sigma * eps)
    return copied


@pytest.mark.parametrize("rank, chunk", [(1, None), (2, 1), (None, None)])
def test_each_member_runs_its_own_weights_on_its_own_observations(rank, chunk):
    module = float64_example()
    es = EGGROLL(module, population=6, rank=rank, sigma=0.4, seed=7, chunk_pairs=chunk)
    policy = ModulePolicy(ModuleNet(module, 4, 2, "cpu"), es)
    pairs = policy.ask(es.strategy, 3, range(3), 0.4)
    x = torch.randn(6, 5, 4, dtype=torch.float64) * 1.5  # member m's own observations x[m]
    got = policy.outputs(x, pairs)
    assert got.shape == (6, 5, 2)
    for member in range(6):
        reference = member_copy(es, 3, member)
        with torch.no_grad():
            reset_state(reference)
            want = reference(x[member])
        torch.testing.assert_close(got[member], want, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(got[0], got[1])  # the perturbations are not trivial
    with torch.no_grad():  # the plain policy is the module itself, row by row
        torch.testing.assert_close(policy.outputs(x[:2])[1], module(x[1]), rtol=0, atol=0)


def test_float32_fused_population_forward_matches_member_copies():
    """What training runs: float32, spikeroll's fused CPU kernels (per-member low-rank layers,
    snnTorch's Leaky) against float32 member copies of the module run one by one."""
    torch.manual_seed(3)
    module = load_factory(EXAMPLE, 4, 2)
    es = EGGROLL(module, population=8, rank=1, sigma=0.2, seed=5)
    assert es.fused and es._fast_neurons  # the snnTorch Leaky kernels are in use
    policy = ModulePolicy(ModuleNet(module, 4, 2, "cpu"), es)
    x = torch.randn(8, 6, 4)
    got = policy.outputs(x, policy.ask(es.strategy, 1, range(4), 0.2))
    for member in range(8):
        reference = member_copy(es, 1, member)
        with torch.no_grad():
            reset_state(reference)
            torch.testing.assert_close(got[member], reference(x[member]), rtol=1e-4, atol=1e-5)


def test_per_member_inputs_leave_the_shared_minibatch_path_unchanged():
    """The same observations for every member through per_member=True give what the shared-minibatch
    population forward gives (classification's path)."""
    module = float64_example()
    es = EGGROLL(module, population=4, rank=1, sigma=0.4, seed=2)
    x = torch.randn(3, 4, dtype=torch.float64)
    shared = es.population_forward(x)
    per_member = es.population_forward(x.repeat(4, 1), per_member=True)
    torch.testing.assert_close(per_member, shared, rtol=1e-12, atol=1e-12)
    with pytest.raises(SpikerollError, match="N·B rows"):
        es.population_forward(torch.randn(7, 4, dtype=torch.float64), per_member=True)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def short(tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("population = 8\nepisodes = 1\neval_episodes = 3\nval_episodes = 2\neval_every = 2\n")
    return ["--env", "CartPole-v1", "--model", EXAMPLE, "--config", str(config), "--quiet"]


def test_cli_run_with_the_snntorch_example_resumes_bit_identically(tmp_path, short):
    full, cut = tmp_path / "full", tmp_path / "cut"
    result = run("train", *short, "--out", str(full), "--generations", "4")
    assert result.exit_code == 0, result.output
    report = json.loads((full / "report.json").read_text())
    assert report["generations"] == 4 and report["sizes"] == [4, 2] and 1 <= report["mean_return"] <= 500
    assert json.loads((full / "config.json").read_text())["model"] == EXAMPLE

    assert run("train", *short, "--out", str(cut), "--generations", "2").exit_code == 0
    line = one_error_line(run("train", "--out", str(cut), "--resume", "--generations", "4", "--quiet"))
    assert f"pass --model {EXAMPLE}" in line
    result = run("train", "--out", str(cut), "--resume", "--generations", "4", "--model", EXAMPLE, "--quiet")
    assert result.exit_code == 0, result.output
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (full, cut))
    assert a["param_names"] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert all(torch.equal(x, y) for x, y in zip(a["params"], b["params"]))
    assert all(torch.equal(a["obs_stats"][k], b["obs_stats"][k]) for k in a["obs_stats"])
    assert a["env_steps"] == b["env_steps"] and a["generation"] == b["generation"] == 4
    assert json.loads((cut / "report.json").read_text())["mean_return"] == report["mean_return"]

    assert "--model" in one_error_line(run("eval", str(full), "--episodes", "3"))
    result = run("eval", str(full), "--episodes", "3", "--model", EXAMPLE)
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    assert evaluated["mean_return"] == report["mean_return"] and evaluated["neuron"] == "module"
    assert "cannot export" in one_error_line(run("export", str(full)))
    gif = tmp_path / "ep.gif"
    assert "--model" in one_error_line(run("play", str(full), "--out", str(gif)))
    pytest.importorskip("pygame")
    pytest.importorskip("PIL")
    result = run("play", str(full), "--out", str(gif), "--model", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


def test_a_module_returning_the_wrong_shape_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from torch import nn\n\ndef make(obs_dim, action_dim):\n"
                   "    return nn.Sequential(nn.Linear(obs_dim, 8), nn.Tanh(), nn.Linear(8, action_dim + 1))\n")
    line = one_error_line(run("train", "--env", "CartPole-v1", "--model", f"{bad}:make", "--generations", "1",
                              "--population", "4", "--out", str(tmp_path / "run"), "--quiet"))
    assert "--model returned (B, 3)" in line and "outputs (B, 2)" in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("overrides, fragment", [
    ({"neuron": "loihi", "weight_bits": 8, "reset": "zero"}, "drop --model or --neuron loihi"),
    ({"workers": 2}, "drop --workers"),
])
def test_settings_a_module_policy_does_not_take_are_refused(tmp_path, overrides, fragment):
    cfg = ControlConfig.for_env("CartPole-v1", model=EXAMPLE, population=8, **overrides)
    with pytest.raises(SpikerollError, match=fragment):
        ControlTrainer(cfg, tmp_path / "run")
