"""The control training loop: episode seeds -> ESEstimator (rollout fitness) -> torch.optim step.

A run directory holds what a classification run's does: config.json (the ControlConfig),
metrics.jsonl (one line per generation: generation, fitness_mean, fitness_max, mean_return, sigma,
lr, env_steps (cumulative training steps), seconds, and val_return every eval_every generations),
checkpoint.pt (parameters in SpikingNet order, optimiser, scheduler, observation statistics,
generation, env_steps, elapsed; written atomically) and report.json (mean_return of the final mean
policy over eval_episodes fixed test seeds, distinct from the training and validation seeds).

A generation is a pure function of (checkpoint state, seed, generation), so `resume=True` continues
an interrupted run to the same bits as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from spikeroll.control.config import CONTROL_ARCHITECTURE_KEYS, ControlConfig
from spikeroll.control.envs import (
    EXTRA,
    EnvBatch,
    episode_seeds,
    evaluation_seeds,
    make_env,
    validation_seeds,
)
from spikeroll.control.factory import make_policy
from spikeroll.control.module_policy import ModulePolicy
from spikeroll.control.policy import IntegerPolicy, ObsStats, SpikingPolicy, integer_policy
from spikeroll.control.remote import RolloutRayEvaluator
from spikeroll.control.rollout import RolloutEvaluator, evaluate_policy, rollout
from spikeroll.errors import SpikerollError
from spikeroll.es.estimators import ESEstimator
from spikeroll.es.schedules import schedule_factor
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets.kernels import numba_threads
from spikeroll.nets.model import SpikingNet
from spikeroll.training.factories import make_optimizer
from spikeroll.training.rundir import CHECKPOINT, CONFIG, check_params, check_tensors, confirm_model, read_state
from spikeroll.training.runfiles import RunFiles

FORMAT = "spikeroll-control/1"  # the checkpoint layout ControlTrainer.checkpoint writes
CHECKPOINT_KEYS = ("format", "config", "generation", "elapsed", "env_steps", "stopped", "params", "param_names",
                   "sizes", "optimizer", "scheduler", "obs_stats")


class ControlTrainer:
    """Owns a control run directory: config.json, metrics.jsonl, checkpoint.pt and report.json.

    `fitness_fn(returns (N, E), lengths (N, E)) -> (N,)` replaces the mean return as the fitness.
    """

    def __init__(self, cfg: ControlConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                 fitness_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
        self.cfg = cfg.validate()
        self.out = Path(out_dir)
        self.files = RunFiles(self.out)
        self.files.refuse_existing(resume, overwrite)
        probe = make_env(cfg.env)  # checks the id, its dependencies and its spaces before anything is written
        self.policy = make_policy(cfg, probe.observation_space, probe.action_space)
        probe.close()
        self.net = self.policy.net
        self.stats = ObsStats(self.net.sizes[0], cfg.obs_norm, cfg.obs_clip)
        self.strategy = policy_strategy(cfg, self.policy)
        self.evaluator = RolloutEvaluator(self.policy, self.strategy, self.stats, cfg.env, cfg.max_episode_steps,
                                          fitness_fn)
        evaluator = self.evaluator  # rollouts in this process, or the same units on Ray workers (control.remote)
        if cfg.workers or cfg.ray_address:
            evaluator = RolloutRayEvaluator(self.evaluator, cfg)
        self.estimator = ESEstimator(self.strategy, evaluator, cfg)  # reads ControlConfig's ES settings
        self.optimizer = make_optimizer(cfg, list(self.net.params.values()))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda g: schedule_factor(cfg.lr_schedule, g, cfg.generations))
        self.generation, self.elapsed, self.env_steps, self.stopped = 0, 0.0, 0, False
        self._val_batch: EnvBatch | None = None
        if resume and (self.out / CHECKPOINT).exists():
            self._restore(load_control_checkpoint(self.out / CHECKPOINT))
        elif cfg.init_from:
            self._start_from(Path(cfg.init_from))
        kept = self.files.kept_metrics(self.generation) if resume else None
        self.files.start(cfg.to_dict(), overwrite, kept)  # everything is checked: only now is the folder changed

    # run directory ---------------------------------------------------------------------------
    def _restore(self, state: dict) -> None:
        saved, now = state["config"], self.cfg.to_dict()
        mismatched = [k for k in CONTROL_ARCHITECTURE_KEYS if saved.get(k) != now[k]]
        if mismatched:
            pairs = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in mismatched)
            raise SpikerollError(f"checkpoint in {self.out} comes from an incompatible config ({pairs}); "
                                 "resume with the original settings or use --overwrite")
        check_params(state, self.net, self.out / CHECKPOINT)
        self.net.load_parameters(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stats.load_state_dict(state["obs_stats"])
        self.generation, self.elapsed = state["generation"], state["elapsed"]
        self.env_steps, self.stopped = state["env_steps"], state["stopped"]
        self.files.saved_generation = self.generation

    def _start_from(self, run_dir: Path) -> None:
        """Start from another control run's mean policy and observation statistics (`init_from`), e.g.
        a float run's, whose policy this run then trains as the integer policy."""
        start_cfg, policy, stats = load_policy(run_dir, model=self.cfg.model)
        if start_cfg.env != self.cfg.env or policy.net.sizes != self.net.sizes:
            raise SpikerollError(f"init_from {run_dir} holds a {start_cfg.env} policy of sizes {policy.net.sizes}, "
                                 f"this run's is {self.cfg.env} {self.net.sizes}; pass a run of the same env "
                                 "and hidden widths")
        self.net.load_parameters([p.detach() for p in policy.net.params.values()])
        self.stats.load_state_dict(stats.state_dict())

    def checkpoint(self) -> None:
        """Write checkpoint.pt atomically (training.runfiles)."""
        self.files.checkpoint({
            "format": FORMAT, "config": self.cfg.to_dict(), "generation": self.generation,
            "elapsed": self.elapsed, "env_steps": self.env_steps, "stopped": self.stopped,
            "params": [p.detach().cpu() for p in self.net.params.values()],
            "param_names": list(self.net.params), "sizes": self.net.sizes,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "obs_stats": self.stats.state_dict(),
        }, self.generation)

    # one generation ----------------------------------------------------------------------------
    def step(self) -> dict:
        """One generation: every member plays this generation's seeds, the shared ES estimator turns
        the returns into p.grad, the optimiser and scheduler step, then the observation statistics
        take in the generation's observations. Advances `generation`; returns the metrics."""
        seeds = episode_seeds(self.cfg.seed, self.generation, self.cfg.episodes)
        metrics = self.estimator.estimate(self.generation, None, seeds)
        self.optimizer.step()
        self.scheduler.step()
        last = self.evaluator.last
        self.stats.update(last.obs_count, last.obs_sum, last.obs_sumsq)
        self.env_steps += last.env_steps
        self.generation += 1
        metrics["mean_return"] = metrics.pop("train_batch_accuracy")  # the evaluator's metric is the mean return
        return metrics

    def validate(self) -> float:
        """Mean return of the mean policy on the val_episodes validation seeds."""
        if self._val_batch is None:
            self._val_batch = EnvBatch(self.cfg.env, self.cfg.val_episodes)
        seeds = validation_seeds(self.cfg.val_episodes)
        return float(evaluate_policy(self.policy, self.stats, self.cfg.env, seeds, self._val_batch).returns.mean())

    # the loop ----------------------------------------------------------------------------------
    def run(self, progress: bool = True, max_seconds: float | None = None) -> dict:
        """Train up to cfg.generations (or until val_return reaches target_return, or max_seconds of
        training), checkpoint, evaluate the final mean policy on the test seeds and write report.json."""
        try:
            with compute_threads(self.cfg.threads):
                return self._run(progress, max_seconds)
        except BaseException:
            self.files.put_back()  # an overwritten run returns if this one wrote no checkpoint
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Close every environment the run holds."""
        self.estimator.close()
        if self._val_batch is not None:
            self._val_batch.close()
            self._val_batch = None

    def _run(self, progress: bool, max_seconds: float | None) -> dict:
        cfg = self.cfg

        def finished() -> bool:
            return self.stopped or self.generation >= cfg.generations or (
                max_seconds is not None and self.elapsed >= max_seconds)

        bar = tqdm(total=cfg.generations, initial=self.generation, disable=not progress, desc=cfg.env, unit="gen",
                   dynamic_ncols=True)
        with self.files.metrics_log() as log:
            while not finished():
                lr = self.optimizer.param_groups[0]["lr"]
                generation, start = self.generation, time.perf_counter()
                record = {"generation": generation, **self.step(), "lr": lr, "env_steps": self.env_steps}
                if self.generation % cfg.eval_every == 0 or self.generation >= cfg.generations:
                    record["val_return"] = self.validate()
                    if cfg.target_return is not None and record["val_return"] >= cfg.target_return:
                        self.stopped = True
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                record["seconds"] = seconds
                self.files.log(log, record)
                if self.generation % cfg.checkpoint_every == 0 or finished():
                    self.checkpoint()
                bar.update(1)
                bar.set_postfix(ret=f"{record['mean_return']:.1f}", val=f"{record.get('val_return', math.nan):.1f}",
                                s_gen=f"{seconds:.2f}")
        bar.close()
        return self.finish()

    def finish(self) -> dict:
        """Evaluate the mean policy on eval_episodes test seeds and write report.json."""
        start = time.perf_counter()
        result = evaluate_policy(self.policy, self.stats, self.cfg.env, evaluation_seeds(self.cfg.eval_episodes))
        report = {
            "env": self.cfg.env,
            "mean_return": float(result.returns.mean()),
            "std_return": float(result.returns.std()),
            "eval_episodes": self.cfg.eval_episodes,
            "generations": self.generation,
            "stopped_at_target": self.stopped,
            "wall_seconds": round(self.elapsed, 3),
            "eval_seconds": round(time.perf_counter() - start, 3),
            "env_steps": self.env_steps,
            "strategy": self.cfg.strategy,
            "rank": self.strategy.rank,
            "population": self.cfg.population,
            "num_parameters": self.net.num_parameters,
            "sizes": self.net.sizes,
            "torch_threads": torch.get_num_threads(),
        }
        self.files.report(report)
        return report


# reading a run back -------------------------------------------------------------------------------
@contextmanager
def compute_threads(threads: int) -> Iterator[None]:
    """torch's and numba's thread counts set to `threads` for the block, restored after it."""
    before = torch.get_num_threads()
    with numba_threads(threads):  # first: starting numba's thread pool can reset OpenMP's count
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def load_control_checkpoint(path: Path) -> dict:
    """A control checkpoint's state (read as classification checkpoints are: tensors and plain
    containers only, nothing in it can run code), checked for every key; any problem is one line."""
    state = read_state(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SpikerollError(f"{path} is not a control checkpoint of this spikeroll ({FORMAT}); "
                             "retrain it, or start over with --overwrite")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise SpikerollError(f"checkpoint {path}: key(s) {', '.join(map(repr, missing))} are missing; "
                             "retrain it, or start over with --overwrite")
    check_tensors(state, path)
    state["config"] = ControlConfig.from_dict(state["config"], source=f"checkpoint {path}: config").validate()\
        .to_dict()
    return state


def policy_strategy(cfg: ControlConfig, policy: SpikingPolicy) -> EvolutionStrategy:
    """The strategy whose noise the policy's members run and whose update the estimator takes: a
    --model policy's EGGROLL's own (its layers' matrix shapes), else one over the SpikingNet."""
    if isinstance(policy, ModulePolicy):
        return policy.es.strategy
    return EvolutionStrategy(policy.net.params, cfg.population, None if cfg.strategy == "openes" else cfg.rank,
                             cfg.seed)


def load_policy(run_dir: str | Path, model: str | None = None) -> tuple[ControlConfig, SpikingPolicy, ObsStats]:
    """The config, mean policy and observation statistics saved in a control run directory. A run
    trained with --model is rebuilt only from a `model` the caller names (importing it runs its
    code), as classification's `load_trained`."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise SpikerollError(f"{run_dir} holds no {CHECKPOINT}; pass the --out directory of a control run")
    state = load_control_checkpoint(path)
    cfg = ControlConfig.from_dict(state["config"])
    confirm_model(cfg, run_dir, model, "policy")
    probe = make_env(cfg.env)
    policy = make_policy(cfg, probe.observation_space, probe.action_space)
    probe.close()
    check_params(state, policy.net, path)
    policy.net.load_parameters(state["params"])
    stats = ObsStats(policy.net.sizes[0], cfg.obs_norm, cfg.obs_clip)
    stats.load_state_dict(state["obs_stats"])
    return cfg, policy, stats


def folded_network(run_dir: str | Path) -> tuple[ControlConfig, SpikingNet]:
    """A run's mean policy as a plain SpikingNet that takes raw observations: the normalisation
    (obs − mean)/std is folded into the first layer (W/std, b − W·mean/std), so the network can be
    exported like a classification run's (e.g. `interop.nir.export_graph(net, frame_shape=(obs_dim,))`,
    fed the observation in each of cfg.time_bins bins). The clip to ±obs_clip is not representable
    and is dropped: the two agree wherever every normalised observation lies within ±obs_clip."""
    return fold_normalisation(*load_policy(run_dir), source=run_dir)


def fold_normalisation(cfg: ControlConfig, policy: SpikingPolicy, stats: ObsStats,
                       source: str | Path = "the policy") -> tuple[ControlConfig, SpikingNet]:
    """`folded_network` of a loaded run (`load_policy`); changes the policy's own first layer."""
    if isinstance(policy, IntegerPolicy):
        raise SpikerollError(f"{source} holds an integer (neuron loihi) policy, whose normalisation cannot be "
                             "folded into integer weights; spikeroll export writes it with the normalisation "
                             "in the graph's metadata")
    net = policy.net
    weight, bias = net.params["layer0.weight"], net.params["layer0.bias"]
    if cfg.obs_norm:
        mean, std = stats.mean_std()
        folded = weight / std
        net.params["layer0.bias"] = bias - folded @ mean
        net.params["layer0.weight"] = folded
    return cfg, net


# the functions the CLI and the API call --------------------------------------------------------
def _saved_settings(run_dir: str | Path) -> dict:
    """A run directory's config.json as a dict of settings, read as data only; {} when it is
    missing, unreadable or not a JSON object (deep nesting included), for the checks below that
    only peek at it. The run's opening validates the config itself."""
    try:
        values = json.loads((Path(run_dir) / CONFIG).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return values if isinstance(values, dict) else {}


def is_control_run(run_dir: str | Path) -> bool:
    """Whether a run directory holds a control run (its config.json names an env), so that
    `spikeroll eval`/`play` can tell it from a classification run without loading a checkpoint."""
    values = _saved_settings(run_dir)
    return "env" in values and "dataset" not in values


def control_model(run_dir: str | Path) -> str | None:
    """The --model FILE.py:FACTORY a control run was trained with (from its config.json), or None;
    read without importing anything, so that commands that cannot use a module refuse it first."""
    model = _saved_settings(run_dir).get("model")
    return model if isinstance(model, str) and model else None


def refuse_module_export(run_dir: str | Path) -> None:
    """Export writes spikeroll's own networks (NIR, Loihi parameters); a user's module is not one."""
    if control_model(run_dir):
        raise SpikerollError(f"{run_dir} holds a --model policy (your own nn.Module), which spikeroll cannot export; "
                             "save it with torch.save(module.state_dict()) from the checkpoint's params instead")


def train_control(cfg: ControlConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False,
                  progress: bool = True, max_seconds: float | None = None,
                  fitness_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> dict:
    """Train a spiking policy for cfg.env in `out_dir`; returns report.json's contents."""
    trainer = ControlTrainer(cfg, out_dir, resume=resume, overwrite=overwrite, fitness_fn=fitness_fn)
    return trainer.run(progress=progress, max_seconds=max_seconds)


def evaluate_control(run_dir: str | Path, episodes: int = 100, weight_bits: int | None = None,
                     model: str | None = None) -> dict:
    """Mean and std of the return of a run's mean policy over `episodes` test episodes (the report's seeds).
    `weight_bits` (8, 4, 2) evaluates a float run's policy quantised onto the integer Loihi policy
    (post-training quantisation, `policy.integer_policy`) instead."""
    if not isinstance(episodes, int) or episodes < 1:
        raise SpikerollError(f"episodes={episodes!r} must be a whole number >= 1; try --episodes 100")
    if weight_bits is not None and control_model(run_dir):
        raise SpikerollError("--weight-bits quantises spikeroll's built-in policy; evaluate a --model policy "
                             "without it")
    cfg, policy, stats = load_policy(run_dir, model=model)
    if weight_bits is not None:
        policy = integer_policy(policy, weight_bits, cfg.obs_clip)
    with compute_threads(cfg.threads):
        result = evaluate_policy(policy, stats, cfg.env, evaluation_seeds(episodes))
    neuron = "loihi" if isinstance(policy, IntegerPolicy) else "module" if cfg.model else "lif"
    return {"env": cfg.env, "mean_return": float(result.returns.mean()), "std_return": float(result.returns.std()),
            "episodes": episodes, "env_steps": result.env_steps, "neuron": neuron,
            "weight_bits": policy.net.bits if neuron == "loihi" else None}


def play(run_dir: str | Path, out_path: str | Path, seed: int = 0, fps: int | None = None,
         model: str | None = None) -> dict:
    """Render one episode of a run's mean policy (render_mode="rgb_array") from `seed` into a GIF
    (Pillow) or, for .mp4, a video (imageio with imageio-ffmpeg); returns its return and length."""
    cfg, policy, stats = load_policy(run_dir, model=model)
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".gif", ".mp4"):
        raise SpikerollError(f"{out_path}: write a .gif or an .mp4")
    env = make_env(cfg.env, render_mode="rgb_array")
    frames = []
    recorder = _Recorder(env, frames)
    try:
        batch = _SingleBatch(recorder, policy)
        result = rollout(policy, batch, stats, [int(seed)], members=1)
    finally:
        env.close()
    fps = fps or int(env.metadata.get("render_fps") or 30)
    _write_video(out_path, frames, fps)
    return {"path": str(out_path), "return": float(result.returns[0, 0]), "steps": int(result.lengths[0, 0]),
            "frames": len(frames)}


class _Recorder:
    """An env whose reset and step also keep the rendered frame."""

    def __init__(self, env, frames: list):
        self.env, self.frames = env, frames

    def _render(self) -> None:
        try:
            frame = self.env.render()
        except ImportError as exc:  # pygame, which renders the classic-control and Box2D envs
            raise SpikerollError(f"rendering {self.env.spec.id} needs pygame ({exc}); {EXTRA}") from None
        if frame is not None:
            self.frames.append(np.asarray(frame, dtype=np.uint8))

    def reset(self, seed: int):
        out = self.env.reset(seed=seed)
        self._render()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._render()
        return out


class _SingleBatch(EnvBatch):
    """An EnvBatch over one given env (for `play`)."""

    def __init__(self, env: _Recorder, policy: SpikingPolicy):
        self.env_id, self.count, self.vector, self.envs = env.env.spec.id, 1, None, [env]
        self.observation_space, self.action_space = env.env.observation_space, env.env.action_space
        self.n_obs = policy.net.sizes[0]


def _write_video(path: Path, frames: list, fps: int) -> None:
    if not frames:
        raise SpikerollError("the env rendered no frames; it may not support render_mode='rgb_array'")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        try:
            import imageio.v2 as imageio  # optional dependency: imageio with imageio-ffmpeg writes mp4
            imageio.mimsave(path, frames, fps=fps)
        except (ImportError, ValueError, RuntimeError) as exc:
            raise SpikerollError(f"writing {path} needs imageio and imageio-ffmpeg ({type(exc).__name__}); "
                                 "pip install imageio imageio-ffmpeg, or write a .gif") from None
        return
    try:
        from PIL import Image  # optional dependency: Pillow writes the GIF (part of the control extra)
    except ImportError:
        raise SpikerollError(f"writing a GIF needs Pillow; {EXTRA}") from None
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
