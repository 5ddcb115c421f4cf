"""The run directory: its file names, its checkpoint, and reading a trained network back.

A run directory holds config.json, metrics.jsonl, checkpoint.pt and report.json. Every file but
metrics.jsonl is written atomically (spikeroll.atomic), so a run killed at any moment leaves its
last checkpoint readable.

Run directories are shared between people, so opening one never runs code from it: a checkpoint is
read with `torch.load(weights_only=True)` (tensors and plain containers only, no pickled objects),
then checked against a schema (`check_checkpoint`) and against the network its config builds
(`check_params`, `check_training_state`) before anything of it is used. A run trained with
`--model FILE.py:FACTORY` names a Python file; `load_trained` imports it only when the caller names
the model again (`model=`, the commands' `--model`)."""

from __future__ import annotations

import dataclasses
import math
import pickle
import types
import typing
from pathlib import Path

import torch

from spikeroll.atomic import atomic_write
from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.es.protocols import Network
from spikeroll.training.factories import make_network, resolve_device

CHECKPOINT = "checkpoint.pt"
REPORT = "report.json"
METRICS = "metrics.jsonl"
CONFIG = "config.json"

FORMAT = 1  # the checkpoint layout Trainer.checkpoint writes
CHECKPOINT_KEYS = ("format", "config", "generation", "elapsed", "params", "param_names", "sizes", "optimizer",
                   "scheduler")
REJECTED = "not a checkpoint of this spikeroll (or a damaged one); retrain it, or start over with --overwrite"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint's state dict atomically."""
    atomic_write(path, lambda h: torch.save(state, h))


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint's state dict (tensors and plain containers only: nothing in the file can run
    code) and check it against the checkpoint schema; any problem is a one-line error."""
    return check_checkpoint(read_state(path), path)


def read_state(path: Path):
    """What a checkpoint file holds, read with `torch.load(weights_only=True)`: tensors and plain
    containers only, never a pickled object; an unreadable or unsafe file is a one-line error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe file gets the same advice
        kind = ("it holds more than tensors and plain data" if isinstance(exc, pickle.UnpicklingError)
                else type(exc).__name__)
        raise SpikerollError(f"checkpoint {path} cannot be read ({kind}); "
                             "delete it and start over with --overwrite") from None
    return state


def _fail(path, field: str, problem: str) -> SpikerollError:
    return SpikerollError(f"checkpoint {path}: {field} {problem}; {REJECTED}")


def _shown(value) -> str:
    """A value from a file, quoted and on one line, short enough for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_checkpoint(state, path) -> dict:
    """`state` if it has the layout Trainer.checkpoint writes (every key, each of its type, a config
    TrainConfig accepts), else a one-line SpikerollError naming the file and the field."""
    if not isinstance(state, dict):
        raise _fail(path, "the file", f"holds a {type(state).__name__}, not a dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise _fail(path, "key(s)", f"{', '.join(map(repr, missing))} are missing")
    if state["format"] != FORMAT or not _is_int(state["format"]):
        raise _fail(path, "format", f"is {_shown(state['format'])}, not {FORMAT}")
    check_config(state["config"], f"checkpoint {path}: config")
    if not _is_int(state["generation"]) or state["generation"] < 0:
        raise _fail(path, "generation", f"is {_shown(state['generation'])}, not an integer >= 0")
    if not _is_number(state["elapsed"]) or not math.isfinite(state["elapsed"]) or state["elapsed"] < 0:
        raise _fail(path, "elapsed", f"is {_shown(state['elapsed'])}, not a number of seconds >= 0")
    check_tensors(state, path)
    sizes = state["sizes"]
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2 or not all(_is_int(s) and s >= 1 for s in sizes):
        raise _fail(path, "sizes", f"is {_shown(sizes)}, not a list of layer widths")
    for key in ("optimizer", "scheduler"):
        if not isinstance(state[key], dict):
            raise _fail(path, key, f"is a {type(state[key]).__name__}, not a state dict")
    return state


def check_tensors(state: dict, path) -> None:
    """`params` is a list of tensors and `param_names` a list of as many names (any checkpoint's)."""
    params, names = state["params"], state["param_names"]
    if not isinstance(params, (list, tuple)):
        raise _fail(path, "params", f"is a {type(params).__name__}, not a list of tensors")
    for i, value in enumerate(params):
        if not isinstance(value, torch.Tensor):
            raise _fail(path, f"params[{i}]", f"is a {type(value).__name__}, not a tensor")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise _fail(path, "param_names", "is not a list of names")
    if len(names) != len(params):
        raise _fail(path, "param_names", f"has {len(names)} names for {len(params)} tensors")


def _fits(value, hint) -> bool:
    """Whether a value read from JSON has the type a TrainConfig field declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_number(value)
    if hint is str:
        return isinstance(value, str)
    return True  # a field of another kind: TrainConfig.validate judges it


def check_config(values, where: str) -> TrainConfig:
    """The TrainConfig of saved settings (a checkpoint's or a config.json's): a dict of known keys,
    each of its field's type, that validates; else a one-line error that begins with `where`."""
    if not isinstance(values, dict):
        raise SpikerollError(f"{where} is a {type(values).__name__}, not a dict of settings; {REJECTED}")
    try:
        cfg = TrainConfig.from_dict(values, source=where)
    except SpikerollError as exc:
        raise SpikerollError(f"{exc}; {REJECTED}") from None
    except (TypeError, ValueError) as exc:
        raise SpikerollError(f"{where} is not a valid config ({exc}); {REJECTED}") from None
    hints = typing.get_type_hints(TrainConfig)
    for name, value in dataclasses.asdict(cfg).items():
        if not _fits(value, hints[name]):
            raise SpikerollError(f"{where}: {name} is {_shown(value)}, not a {hints[name]}; {REJECTED}")
    try:
        return cfg.validate()
    except SpikerollError as exc:
        raise SpikerollError(f"{where}: {exc}") from None


def check_sizes(state: dict, cfg: TrainConfig, path) -> None:
    """The recorded layer widths agree with the config and describe a network about the size of the
    saved parameters (it is built from them before its parameters are compared)."""
    sizes = list(state["sizes"])
    if cfg.model:
        if len(sizes) != 2:
            raise _fail(path, "sizes", f"is {sizes}; a --model run records [inputs, classes]")
        return
    if sizes[1:-1] != list(cfg.hidden):
        raise _fail(path, "sizes", f"is {sizes}, but its config's hidden widths are {cfg.hidden}")
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    held = sum(p.numel() for p in state["params"])
    if weights > 4 * held + 2**20:  # a network far larger than the file: refused before it is allocated
        raise _fail(path, "sizes", f"is {sizes} ({weights} weights), but params hold {held} numbers")


def check_params(state: dict, net: Network, path) -> None:
    """The saved tensors are the network's: as many, each with its name, shape and dtype."""
    params, names, mine = state["params"], state["param_names"], list(net.params.items())
    if len(params) != len(mine):
        raise _fail(path, "params", f"holds {len(params)} tensors, the network its config builds has {len(mine)}")
    for i, (value, saved_name, (name, p)) in enumerate(zip(params, names, mine)):
        if saved_name != name:
            raise _fail(path, f"param_names[{i}]", f"is {_shown(saved_name)}, the network's is {name!r}")
        if tuple(value.shape) != tuple(p.shape):
            raise _fail(path, f"params[{i}] {name!r}", f"has shape {tuple(value.shape)}, the network's is "
                                                       f"{tuple(p.shape)}")
        if value.dtype != p.dtype:
            raise _fail(path, f"params[{i}] {name!r}", f"has dtype {value.dtype}, the network's is {p.dtype}")


def _same_kind(saved, fresh) -> bool:
    """Whether a saved state-dict value has the structure of the freshly built one. A dict may lack
    keys (a checkpoint of an older torch, whose loader fills them in) but has no others."""
    if fresh is None or isinstance(fresh, bool):  # flags such as foreach/fused: None or a bool
        return saved is None or isinstance(saved, bool)
    if _is_number(fresh):
        return _is_number(saved)
    if isinstance(fresh, (list, tuple)):
        return (isinstance(saved, (list, tuple)) and len(saved) == len(fresh)
                and all(_same_kind(s, f) for s, f in zip(saved, fresh)))
    if isinstance(fresh, dict):
        return isinstance(saved, dict) and saved.keys() <= fresh.keys() and all(
            _same_kind(saved[k], fresh[k]) for k in saved)
    if isinstance(fresh, torch.Tensor):
        return isinstance(saved, torch.Tensor) and saved.shape == fresh.shape and saved.dtype == fresh.dtype
    return type(saved) is type(fresh)


def check_training_state(state: dict, optimizer: torch.optim.Optimizer, scheduler, path) -> None:
    """The saved optimiser and lr-scheduler states fit the ones this run built: the same parameter
    groups and settings, per-parameter tensors of each parameter's shape, the same scheduler fields."""
    saved, fresh = state["optimizer"], optimizer.state_dict()
    if saved.keys() != fresh.keys() or not isinstance(saved["param_groups"], list) \
            or not isinstance(saved["state"], dict):
        raise _fail(path, "optimizer", "is not an optimizer state dict")
    if not _same_kind(saved["param_groups"], fresh["param_groups"]) or [
            g.get("params") for g in saved["param_groups"]] != [g["params"] for g in fresh["param_groups"]]:
        raise _fail(path, "optimizer.param_groups", f"do not fit this run's {type(optimizer).__name__}")
    shapes = {i: p.shape for group, fresh_group in zip(optimizer.param_groups, fresh["param_groups"])
              for i, p in zip(fresh_group["params"], group["params"])}
    for key, entry in saved["state"].items():
        if key not in shapes or not isinstance(entry, dict):
            raise _fail(path, f"optimizer.state[{_shown(key)}]", "belongs to no parameter of this run")
        for name, value in entry.items():
            ok = (isinstance(name, str) and (value is None or _is_number(value) or (
                isinstance(value, torch.Tensor) and (value.dim() == 0 or value.shape == shapes[key]))))
            if not ok:
                raise _fail(path, f"optimizer.state[{key}][{_shown(name)}]", "does not fit its parameter")
    if not _same_kind(state["scheduler"], scheduler.state_dict()):
        raise _fail(path, "scheduler", "does not fit this run's lr schedule")


def _one_line(text: str) -> str:
    return text if text.isprintable() else repr(text)


def model_refusal(where: str, model: str, action: str = "opening it") -> SpikerollError:
    """The error for a run trained with --model whose user did not name the model again."""
    model = _one_line(model)
    return SpikerollError(f"{where} was trained with --model {model}; {action} imports and runs that Python file, "
                          f"so pass --model {model} to confirm you trust it")


def confirm_model(cfg, run_dir, model: str | None, builtin: str) -> None:
    """The trust rule on opening a saved run: one trained with --model opens only with a `model` the
    caller names (set into cfg: importing it runs its code); naming one for a run of spikeroll's own
    `builtin` (network, policy) is an error."""
    if cfg.model:
        if model is None:
            raise model_refusal(str(run_dir), cfg.model)
        cfg.model = model
    elif model is not None:
        raise SpikerollError(f"{run_dir} holds spikeroll's built-in {builtin}, not a --model module; drop --model")


def fitness_refusal(where: str, fitness: str) -> SpikerollError:
    """The error for resuming a run trained with --fitness whose user did not name the file again."""
    fitness = _one_line(fitness)
    return SpikerollError(f"{where} was trained with --fitness {fitness}; resuming it imports and runs that Python "
                          f"file, so pass --fitness {fitness} to confirm you trust it")


def same_model(a: str | None, b: str | None) -> bool:
    """Whether two --model specs name the same factory in the same file (paths compared resolved)."""
    if not a or not b:
        return a == b
    (path_a, _, name_a), (path_b, _, name_b) = str(a).rpartition(":"), str(b).rpartition(":")
    return name_a == name_b and Path(path_a).resolve() == Path(path_b).resolve()


def load_trained(run_dir: str | Path, model: str | None = None) -> tuple[TrainConfig, Network]:
    """The config and mean network saved in a run directory's checkpoint.

    A run trained with --model is rebuilt only from a `model` the caller names (FILE.py:FACTORY,
    normally the saved one): importing it runs its code. Without it such a run is an error that
    says which file it would import, before anything is imported."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise SpikerollError(f"{run_dir} holds no {CHECKPOINT}; pass the --out directory of a training run")
    state = load_checkpoint(path)
    cfg = check_config(state["config"], f"checkpoint {path}: config")
    confirm_model(cfg, run_dir, model, "network")
    check_sizes(state, cfg, path)
    sizes = state["sizes"]
    net = make_network(cfg, sizes[0], sizes[-1], resolve_device(cfg.device))
    check_params(state, net, path)
    net.load_parameters(state["params"])
    return cfg, net
