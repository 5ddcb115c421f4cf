"""Batches of Gymnasium environments, one per (member, episode), and the seeds they play.

Layout: environment j = member·E + episode, for N members and E episodes. Every member plays the
same E episode seeds (common random numbers): member i's episode e starts where every other
member's episode e starts, so their returns differ by the policy, not by the luck of the draw.

Two backends, both behind `EnvBatch`:

* an env with a NumPy-batched implementation (`vector_entry_point`, e.g. CartPole-v1) runs as one
  `gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`; every sub-env is stepped
  every step. Where it keeps its state as an array with sub-envs on the last axis (CartPole's
  `state`), each column is set to the start state that a single env seeded with its episode seed
  would draw, so the seeds mean the same as with one env per seed.
* any other env runs as a list of `gymnasium.make` envs (what `SyncVectorEnv` holds), each reset with
  its own seed; only the envs whose episode is still running are stepped, so a generation costs the
  steps its episodes take rather than (longest episode) x (number of envs).

An episode ends at termination or truncation; its return is the rewards summed until then (a
vectorised env's steps after its autoreset are ignored).

Seeds: a generation's training seeds are a pure function of (seed, generation), hashed into
[0, 2^31); validation and test seeds lie above 2^31 and are fixed, so they never meet a training
seed and runs are compared on the same test episodes.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeroll.errors import SpikerollError
from spikeroll.noise import counter_seed

SEED_TAG = 0x5EED  # the `param_index` counter of episode seeds (distinct from every parameter index)
TRAIN_SEEDS = 2**31  # training seeds lie in [0, 2^31)
VAL_SEED0 = 2**31  # validation seeds: VAL_SEED0 + i
TEST_SEED0 = 2**31 + 2**30  # test (report) seeds: TEST_SEED0 + i
EXTRA = "pip install 'spikeroll[control]'"  # gymnasium, Box2D (LunarLander), pygame (rendering), imageio


def episode_seeds(seed: int, generation: int, episodes: int) -> torch.Tensor:
    """The training episode seeds (E,) of a generation: a pure function of (seed, generation)."""
    return torch.tensor([counter_seed(seed, generation, SEED_TAG, e) % TRAIN_SEEDS for e in range(episodes)],
                        dtype=torch.long)


def validation_seeds(episodes: int) -> list[int]:
    """The fixed seeds of the periodic evaluation (val_return), distinct from training and test seeds."""
    return [VAL_SEED0 + i for i in range(episodes)]


def evaluation_seeds(episodes: int) -> list[int]:
    """The fixed seeds of the report's evaluation, distinct from training and validation seeds."""
    return [TEST_SEED0 + i for i in range(episodes)]


def _gymnasium():
    try:
        import gymnasium  # optional dependency: the `control` extra
    except ImportError:
        raise SpikerollError(f"control tasks need gymnasium, which is not installed; {EXTRA}") from None
    return gymnasium


def _missing(env_id: str, exc: BaseException) -> SpikerollError:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    fix = "pip install 'gymnasium[mujoco]'" if "mujoco" in text.lower() else EXTRA
    return SpikerollError(f"env {env_id!r} needs a package that is not installed ({text}); {fix}")


def make_env(env_id: str, render_mode: str | None = None, max_episode_steps: int | None = None):
    """One Gymnasium env; an unknown id, a missing dependency or an unsupported space is a one-line error."""
    gym = _gymnasium()
    if not isinstance(env_id, str) or not env_id:
        raise SpikerollError(f"env must be a Gymnasium id such as CartPole-v1, got {env_id!r}")
    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise SpikerollError(f"unknown env id {env_id!r} ({_first(exc)}); try CartPole-v1, Acrobot-v1, "
                             "MountainCarContinuous-v0 or LunarLander-v3") from None
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    try:
        env = gym.make(env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        raise _missing(env_id, exc) from None
    except Exception as exc:  # noqa: BLE001 - a user's env failing in its constructor: one line, not a traceback
        raise SpikerollError(f"env {env_id!r} could not be made ({type(exc).__name__}: {_first(exc)})") from None
    check_spaces(env_id, env.observation_space, env.action_space)
    return env


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def check_spaces(env_id: str, observation_space, action_space) -> None:
    """A Box observation and a Discrete or Box action space; anything else is a one-line error."""
    from gymnasium import spaces  # optional dependency: the `control` extra

    if not isinstance(observation_space, spaces.Box):
        raise SpikerollError(f"env {env_id!r} has a {type(observation_space).__name__} observation space; "
                             "spiking control policies take a Box (a vector of numbers)")
    if isinstance(action_space, spaces.Discrete):
        return
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1 and \
            np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)):
        return
    raise SpikerollError(f"env {env_id!r} has a {type(action_space).__name__} action space "
                         f"{_first(Exception(str(action_space)))}; spiking control policies act in a Discrete "
                         "space or a bounded 1-D Box")


def space_sizes(observation_space, action_space) -> tuple[int, int]:
    """(observation features, readout width): n actions for Discrete, the action dimension for a Box."""
    n_obs = int(np.prod(observation_space.shape))
    n_out = int(action_space.n) if is_discrete(action_space) else int(action_space.shape[0])
    return n_obs, n_out


def is_discrete(space) -> bool:
    """Whether an action space is Gymnasium's Discrete (else a Box: check_spaces allows nothing else)."""
    return isinstance(space, _gymnasium().spaces.Discrete)


class EnvBatch:
    """`count` copies of one env: reset them to given seeds, step them with a batch of actions.

    `step` returns (obs (count, obs_dim) float32, rewards (count,) float64, done (count,) bool) and
    steps only the envs flagged in `active` where the backend allows it (others report reward 0).
    """

    def __init__(self, env_id: str, count: int, max_episode_steps: int | None = None):
        self.env_id, self.count = env_id, count
        probe = make_env(env_id, max_episode_steps=max_episode_steps)  # checks the id, dependencies and spaces
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        self.vector = None
        gym = _gymnasium()
        spec = gym.spec(env_id)
        if spec.vector_entry_point is not None and not spec.additional_wrappers:
            kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
            self.vector = gym.make_vec(env_id, num_envs=count, vectorization_mode="vector_entry_point", **kwargs)
            self._probe_vec = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
            probe.close()
            self.envs = []
        else:
            self.envs = [probe] + [make_env(env_id, max_episode_steps=max_episode_steps) for _ in range(count - 1)]
        self.n_obs, self.n_out = space_sizes(self.observation_space, self.action_space)

    def reset(self, seeds: list[int]) -> np.ndarray:
        """Reset env j to seeds[j]; the start observations (count, obs_dim)."""
        if self.vector is None:
            return np.stack([np.asarray(env.reset(seed=int(s))[0], dtype=np.float32).reshape(-1)
                             for env, s in zip(self.envs, seeds)])
        obs, _ = self.vector.reset(seed=int(seeds[0]))
        state = getattr(self.vector.unwrapped, "state", None)  # Gymnasium's batched CartPole keeps its states here
        if isinstance(state, np.ndarray) and state.shape[-1] == self.count:
            # each column starts where a single env seeded with its seed starts (common random numbers)
            starts = {}
            for s in dict.fromkeys(int(s) for s in seeds):
                first, _ = self._probe_vec.reset(seed=s)
                starts[s] = (np.array(self._probe_vec.unwrapped.state[..., 0]), np.asarray(first[0]))
            state[...] = np.stack([starts[int(s)][0] for s in seeds], axis=-1)
            obs = np.stack([starts[int(s)][1] for s in seeds])
        return np.asarray(obs, dtype=np.float32).reshape(self.count, -1)

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step the envs (all of a vectorised env, else only the `active` ones) with `actions` (count, ...)."""
        if self.vector is not None:
            obs, rewards, terminated, truncated, _ = self.vector.step(actions)
            return (np.asarray(obs, dtype=np.float32).reshape(self.count, -1), np.asarray(rewards, dtype=np.float64),
                    np.logical_or(terminated, truncated))
        obs = np.zeros((self.count, self.n_obs), dtype=np.float32)
        rewards = np.zeros(self.count)
        done = np.ones(self.count, dtype=bool)
        for j in np.flatnonzero(active):
            o, r, term, trunc, _ = self.envs[j].step(actions[j])
            obs[j], rewards[j], done[j] = np.asarray(o, dtype=np.float32).reshape(-1), r, term or trunc
        return obs, rewards, done

    def close(self) -> None:
        """Close every env."""
        if self.vector is not None:
            self.vector.close()
            self._probe_vec.close()
        for env in self.envs:
            env.close()
