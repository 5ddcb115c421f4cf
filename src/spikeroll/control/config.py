"""ControlConfig: every setting of a control run (saved as config.json), with per-environment defaults.

The ES settings (sigma, sigma_final, shaping, strategy, rank, population, optimizer, lr, lr_schedule,
momentum, weight_decay, generations) keep the names and meanings of `spikeroll.config.TrainConfig`, so
the shared ES machinery (`es.estimators.ESEstimator`, `es.schedules.sigma_at`,
`training.factories.make_optimizer`) reads a ControlConfig exactly as it reads a TrainConfig.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from spikeroll.config import (
    OPTIMIZERS,
    RESETS,
    SCHEDULES,
    SEED_RANGE,
    SHAPINGS,
    check_population,
    check_rank,
    neuron_checks,
    read_settings,
)
from spikeroll.errors import SpikerollError

CONTROL_STRATEGIES = ("eggroll", "openes")  # the population strategies a rollout fitness can drive


@dataclass
class ControlConfig:
    """Every setting of a control run; `validate` gives a one-line SpikerollError for a bad one."""

    # task
    env: str = "CartPole-v1"
    max_episode_steps: int | None = None  # training episodes only; evaluation uses the env's registered limit
    # policy: normalised observation -> constant current over time_bins -> LIF layers -> leaky readout
    hidden: list[int] = field(default_factory=lambda: [16])
    time_bins: int = 8
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"
    init_gain: float = 1.0
    obs_norm: bool = True  # running mean/std of the observations (OpenAI-ES), updated between generations
    obs_clip: float = 5.0  # normalised observations are clipped to ±obs_clip
    neuron: str = "lif"  # "loihi": the integer policy on Loihi's arithmetic (control.policy.IntegerPolicy)
    weight_bits: int | None = None  # loihi: 8, 4 or 2 (ternary) bit weights
    init_from: str | None = None  # start from this control run's mean policy and observation statistics
    # FILE.py:FACTORY: the user's nn.Module as the policy instead (control.module_policy); hidden,
    # time_bins, beta, threshold, reset and init_gain then do not apply (the module has its own)
    model: str | None = None
    # strategy
    strategy: str = "eggroll"
    rank: int = 1
    population: int = 64
    sigma: float = 0.1
    sigma_final: float | None = None
    shaping: str = "centered_ranks"
    episodes: int = 1  # episodes each member plays per generation (the same seeds for every member)
    # optimiser
    optimizer: str = "adam"
    lr: float = 0.05
    lr_schedule: str = "constant"
    momentum: float = 0.9
    weight_decay: float = 0.0
    # loop
    generations: int = 100
    seed: int = 0
    eval_every: int = 5  # mean policy on val_episodes validation seeds, logged as val_return
    val_episodes: int = 10
    target_return: float | None = None  # stop once val_return reaches this (validation seeds, not test seeds)
    eval_episodes: int = 100  # the report's mean_return: the final mean policy on fixed test seeds
    checkpoint_every: int = 10
    # torch and numba threads in this process while training or evaluating: a policy step's tensors
    # are tiny, so more threads mostly wait on each other (2 threads: 13x slower under load,
    # docs/distributed.md); where rollouts run, never what they give
    threads: int = 1
    # Ray workers (spikeroll.control.remote, extra `distributed`): where rollouts run, never what they give
    workers: int = 0  # Ray worker processes; 0 = play the rollouts in this process
    threads_per_worker: int | None = None  # None = the cores divided evenly among the workers
    ray_address: str | None = None  # join a running cluster: "auto" or HOST:PORT (None: start a local one)
    worker_timeout: float = 60.0  # seconds with no live worker before the run stops with an error

    def validate(self) -> ControlConfig:
        """This config when every setting has its type and lies in range; else a one-line SpikerollError."""
        check_kinds(vars(self))
        checks = [
            (bool(self.env.strip()), "env must name a Gymnasium environment id, e.g. --env CartPole-v1"),
            (self.max_episode_steps is None or self.max_episode_steps >= 1,
             f"max_episode_steps={self.max_episode_steps} must be >= 1 (or left out: the env's own limit)"),
            (len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
             f"hidden={self.hidden} must list positive widths, e.g. --hidden 32 or --hidden 64,64"),
            (1 <= self.time_bins <= 1000, f"time_bins={self.time_bins} must be between 1 and 1000; try --time-bins 8"),
            (0.0 <= self.beta <= 1.0, f"beta={self.beta} is outside [0, 1]; pass a decay factor such as --beta 0.9"),
            (self.threshold > 0, f"threshold={self.threshold} must be > 0; try --threshold 1.0"),
            (self.reset in RESETS, f"unknown reset {self.reset!r}; choose one of {', '.join(RESETS)}"),
            (self.init_gain > 0, f"init_gain={self.init_gain} must be > 0; try --init-gain 1.0"),
            (self.obs_clip > 0, f"obs_clip={self.obs_clip} must be > 0; try --obs-clip 5"),
            (self.strategy in CONTROL_STRATEGIES,
             f"unknown strategy {self.strategy!r} for control; choose one of {', '.join(CONTROL_STRATEGIES)}"),
            (self.sigma > 0, f"sigma={self.sigma} must be > 0; try --sigma 0.1"),
            (self.sigma_final is None or self.sigma_final > 0, f"sigma_final={self.sigma_final} must be > 0"),
            (self.shaping in SHAPINGS, f"unknown shaping {self.shaping!r}; choose one of {', '.join(SHAPINGS)}"),
            (self.episodes >= 1, f"episodes={self.episodes} must be >= 1; try --episodes 1"),
            (self.optimizer in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"),
            (self.lr > 0, f"lr={self.lr} must be > 0; try --lr 0.05"),
            (self.lr_schedule in SCHEDULES,
             f"unknown lr schedule {self.lr_schedule!r}; choose one of {', '.join(SCHEDULES)}"),
            (0.0 <= self.momentum < 1.0, f"momentum={self.momentum} must be in [0, 1); try --momentum 0.9"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0"),
            (self.generations >= 1, f"generations={self.generations} must be >= 1"),
            (SEED_RANGE[0] <= self.seed < SEED_RANGE[1], "seed is out of range; it must fit 64 bits, e.g. --seed 0"),
            (self.eval_every >= 1 and self.checkpoint_every >= 1, "eval_every and checkpoint_every must be >= 1"),
            (isinstance(self.threads, int) and self.threads >= 1,
             f"threads={self.threads!r} must be >= 1; try threads = 1"),
            (self.val_episodes >= 1, f"val_episodes={self.val_episodes} must be >= 1"),
            (self.eval_episodes >= 1, f"eval_episodes={self.eval_episodes} must be >= 1; try --eval-episodes 100"),
            (0 <= self.workers <= max(1, self.population // 2), f"workers={self.workers} must be between 0 (this "
             f"process) and the population's {self.population // 2} pairs; try --workers 2"),
            (self.threads_per_worker is None or self.threads_per_worker >= 1,
             f"threads_per_worker={self.threads_per_worker} must be >= 1; try --threads-per-worker 1"),
            (self.ray_address is None or bool(self.ray_address.strip()),
             "ray_address must be auto or HOST:PORT (or left out: a local Ray instance)"),
            (self.worker_timeout > 0,
             f"worker_timeout={self.worker_timeout} must be > 0 seconds; try --worker-timeout 60"),
        ]
        for ok, message in checks + integer_checks(self) + model_checks(self):
            if not ok:
                raise SpikerollError(message)
        check_population(self.population)
        if self.strategy == "eggroll":
            check_rank(self.rank)  # the upper bound needs the policy's shapes (checked when the strategy is built)
        return self

    def to_dict(self) -> dict:
        """The settings as a plain dict (what config.json holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> ControlConfig:
        """A config from a mapping of settings; unknown keys and wrong types are one-line errors naming `source`."""
        if not isinstance(values, dict):
            raise SpikerollError(f"{source}: a control config is a table of settings, not {type(values).__name__}")
        unknown = sorted(repr(k)[:40] for k in set(values) - set(FIELDS))
        if unknown:
            raise SpikerollError(f"{source}: unknown control setting(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(FIELDS)}")
        values = dict(values)
        if isinstance(values.get("hidden"), int) and not isinstance(values["hidden"], bool):
            values["hidden"] = [values["hidden"]]
        check_kinds(values, source)
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> ControlConfig:
        """A config from a TOML or JSON file (configs/control/*.toml); any problem is a one-line error."""
        return cls.from_dict(read_settings(path), source=str(path))

    @classmethod
    def for_env(cls, env: str, **overrides) -> ControlConfig:
        """The shipped defaults of `env` (ENV_DEFAULTS; the plain defaults for other envs) with `overrides`."""
        return cls.from_dict({"env": env, **ENV_DEFAULTS.get(env, {}), **overrides}, source=f"config for {env}")


def integer_checks(cfg: ControlConfig) -> list[tuple[bool, str]]:
    """The integer policy's settings (neuron = "loihi"): what Loihi's neuron and the integer
    forward support (reset to zero, weights in threshold units, low-rank noise)."""
    loihi = cfg.neuron == "loihi"
    return [
        *neuron_checks(cfg.neuron, cfg.weight_bits, "policy"),
        (not loihi or cfg.strategy == "eggroll",
         "neuron loihi takes low-rank noise only; use strategy eggroll (--strategy eggroll), not openes"),
        (not loihi or cfg.reset == "zero",
         f"neuron loihi resets to zero (Loihi's neuron), not {cfg.reset!r}; set reset = \"zero\" (--reset zero)"),
        (not loihi or cfg.threshold == 1.0,
         f"neuron loihi takes weights in threshold units; threshold={cfg.threshold} must be 1.0 (--threshold 1)"),
    ]


def model_checks(cfg: ControlConfig) -> list[tuple[bool, str]]:
    """What a --model policy does not do yet: the integer policy, Ray workers."""
    return [
        (not cfg.model or bool(str(cfg.model).strip()), "model must be FILE.py:FACTORY, e.g. "
         "--model examples/snntorch_cartpole.py:make_policy"),
        (not cfg.model or cfg.neuron == "lif", "neuron loihi is spikeroll's built-in integer policy; drop --model "
         "or --neuron loihi"),
        (not cfg.model or not (cfg.workers or cfg.ray_address), "a --model policy plays its rollouts in this "
         "process; drop --workers/--ray-address"),
    ]


FIELDS = {f.name: f for f in dataclasses.fields(ControlConfig)}
_KINDS = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "true or false",
          "list[int]": "a list of positive whole numbers, e.g. [32] or [64, 64]"}


def _has_kind(value, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, list) and all(_has_kind(v, "int") for v in value)


def check_kinds(values: dict, source: str | None = None) -> None:
    """Every setting has its field's type (ints are fine for floats; floats must be finite); else a one-line error."""
    prefix = f"{source}: " if source else ""
    for name, value in values.items():
        parts = [p.strip() for p in str(FIELDS[name].type).split("|")]
        if value is None and "None" in parts:
            continue
        (kind,) = [p for p in parts if p != "None"]
        if not _has_kind(value, kind):
            raise SpikerollError(f"{prefix}{name} must be {_KINDS[kind]}"
                                 f"{' (or left out)' if 'None' in parts else ''}, got {repr(value)[:60]}")


# Settings that define the policy and the experiment: a checkpoint resumes only if they match.
CONTROL_ARCHITECTURE_KEYS = ("env", "hidden", "time_bins", "beta", "threshold", "reset", "obs_norm", "obs_clip",
                             "neuron", "weight_bits", "strategy", "rank", "population", "episodes", "seed",
                             "optimizer", "max_episode_steps", "model")

# Per-environment defaults that solve the task (docs/control.md has the measured runs); the same
# settings ship as configs/control/<env>.toml.
ENV_DEFAULTS: dict[str, dict] = {
    "CartPole-v1": dict(hidden=[16], time_bins=8, population=64, rank=1, sigma=0.1, lr=0.05, episodes=2,
                        generations=100, eval_every=5, val_episodes=10, target_return=490.0),
    "Acrobot-v1": dict(hidden=[32], time_bins=8, population=64, rank=1, sigma=0.1, lr=0.05, episodes=2,
                       generations=100, eval_every=5, val_episodes=10, target_return=-85.0),
    "LunarLander-v3": dict(hidden=[32], time_bins=8, population=256, rank=2, sigma=0.1, lr=0.05, episodes=1,
                           generations=400, eval_every=10, val_episodes=50,
                           target_return=230.0, checkpoint_every=10),
}
