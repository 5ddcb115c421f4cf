"""The few calls a Python user needs: train a run, evaluate a run, export a run, load its data."""

from __future__ import annotations

from pathlib import Path

from spikeroll.config import TrainConfig, parse_widths, read_settings
from spikeroll.control.config import FIELDS as CONTROL_FIELDS
from spikeroll.control.config import ControlConfig
from spikeroll.control.export import integer_description
from spikeroll.control.policy import IntegerPolicy
from spikeroll.control.trainer import (
    evaluate_control,
    fold_normalisation,
    is_control_run,
    load_policy,
    play,
    refuse_module_export,
    train_control,
)
from spikeroll.errors import SpikerollError
from spikeroll.interop.nir import (
    check_inputs,
    export_graph,
    export_integer_graph,
    export_network,
    import_graph,
    network_config,
    write_graph,
)
from spikeroll.nets.integer import export_loihi
from spikeroll.training.evaluation import accuracy, accuracy_and_counts, early_exit
from spikeroll.training.factories import load_data
from spikeroll.training.rundir import load_trained, model_refusal, same_model
from spikeroll.training.trainer import Trainer

__all__ = ["control_config", "evaluate_control_run", "export_control_run", "is_control_run", "play_run",
           "train_control_run", "evaluate_run", "export_loihi_run", "export_run", "load_data", "train_run"]


def train_run(cfg: TrainConfig | None = None, out_dir: str | Path = "runs/latest", *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, data=None, callbacks=(), fitness=None) -> dict:
    """Train (or resume) a run and return its report (also written to out_dir/report.json).

    `callbacks` are `spikeroll.training.callbacks.Callback` instances called around every generation.
    A NIR graph as `cfg.init_from` (a .nir file) sets the network's settings and first parameters; a
    run directory trained with --model as `cfg.init_from` opens only when `cfg.model` names the model
    (it is imported: see `spikeroll.training.rundir.load_trained`). `fitness` is your own
    fitness(logits, labels, counts) -> (N,) in place of cfg.objective (spikeroll.es.objectives,
    docs/energy.md)."""
    cfg = cfg or TrainConfig()
    init_net = None
    if cfg.init_from and str(cfg.init_from).endswith(".nir") and not resume:
        imported = import_graph(cfg.init_from)
        network_config(cfg, imported)  # the graph defines the network
        init_net = imported.net
    cfg = cfg.validate()
    data = data if data is not None else load_data(cfg, progress)
    trainer = Trainer(cfg, out_dir, data, resume=resume, overwrite=overwrite, callbacks=callbacks, init_net=init_net,
                      fitness=fitness)
    return trainer.run(progress=progress)


def evaluate_run(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 images: str | None = None, tta_shift: int = 0, *, model: str | None = None,
                 early_exit_confidence: float | None = None) -> dict:
    """Accuracy of a run's saved network on every split of its dataset (or another one); with
    tta_shift > 0, averaged over shifted copies of each recording (see
    `spikeroll.training.evaluation.accuracy`). `run_dir` may also be a NIR graph (a .nir file): its
    network, on the dataset its metadata names (spikeroll's exports) or the one given.

    A run trained with --model opens only with `model` (FILE.py:FACTORY) given: it is imported and
    run (see `spikeroll.training.rundir.load_trained`). With `early_exit_confidence`, each
    validation and test recording is also decided at its first confident time bin
    (`spikeroll.training.evaluation.early_exit`: accuracy, bins used, SynOps spent)."""
    if early_exit_confidence is not None and not 0.0 < early_exit_confidence <= 1.0:
        raise SpikerollError(f"--early-exit-confidence {early_exit_confidence} must be in (0, 1], e.g. 0.9")
    imported = None
    if str(run_dir).endswith(".nir"):
        imported = import_graph(run_dir)
        cfg, net = network_config(TrainConfig(), imported), imported.net
    else:
        cfg, net = load_trained(run_dir, model=model)
    if dataset is not None:
        cfg.dataset, cfg.data_dir, cfg.images, cfg.val_ids = dataset, data_dir, images, None
    elif data_dir is not None:
        cfg.data_dir = data_dir
    data = load_data(cfg, progress=False)
    if imported is not None:
        check_inputs(imported, data.train.frames)
    result = {"run": str(run_dir), "dataset": cfg.dataset}
    if tta_shift:
        result["tta_shift"] = tta_shift
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        result[f"{name}_accuracy"] = accuracy(net, split, tta_shift=tta_shift)
    for name, split in (("val", data.val), ("test", data.test)):  # SynOps and rates (docs/energy.md)
        counted = accuracy_and_counts(net, split, f"{name}_")
        result.update({k: v for k, v in counted.items() if not k.endswith("accuracy")})
        if early_exit_confidence is not None:
            result.update(early_exit(net, split, early_exit_confidence, f"{name}_"))
    if early_exit_confidence is not None:
        result["early_exit_confidence"] = early_exit_confidence
    return result


def export_run(run_dir: str | Path, out: str | Path | None = None, *, model: str | None = None) -> Path:
    """Write a run's trained network as a NIR graph (default RUN_DIR/network.nir) and return its
    path; a subtract-reset network also emits a NIRExportWarning (see spikeroll.interop.nir).
    `model`: the FILE.py:FACTORY a --model run needs to be opened (it is imported)."""
    cfg, net = load_trained(run_dir, model=model)
    return export_network(net, cfg, Path(out) if out else Path(run_dir) / "network.nir", source=str(run_dir))


def export_loihi_run(run_dir: str | Path, out: str | Path | None = None, *, model: str | None = None) -> Path:
    """Write an integer run's (--neuron loihi) weights, exponents and neuron constants as Loihi-style
    parameters (.json or .npz; default RUN_DIR/loihi.json) and return the path. `model`: as in
    `export_run`. An integer control run's file also holds what `export_control_run`'s metadata
    does (observation statistics, input exponent, action rule)."""
    path = Path(out) if out else Path(run_dir) / "loihi.json"
    if is_control_run(run_dir):
        refuse_module_export(run_dir)
        policy, conventions, metadata = _integer_control_policy(run_dir)
        export_loihi(policy.net, path, conventions, metadata)
        return path
    _, net = load_trained(run_dir, model=model)
    export_loihi(net, path)
    return path


# control (Gymnasium) runs ------------------------------------------------------------------------

def control_config(env: str | None, config_file: str | None, out_dir: str | Path | None,
                   overrides: dict) -> ControlConfig:
    """A control run's config: the env's shipped defaults < a --config file < the saved config of a
    resumed run (`out_dir`) < the options typed (`overrides`, None = not typed). A typed option that
    a control run has no use for is a one-line error."""
    typed = {k: v for k, v in overrides.items() if v is not None}
    unused = sorted(k for k in typed if k not in CONTROL_FIELDS)
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise SpikerollError(f"{flags} does not apply to a control run (--env); its settings are "
                             f"{', '.join(CONTROL_FIELDS)} (docs/control.md)")
    if "hidden" in typed:
        typed["hidden"] = parse_widths(typed["hidden"])
    values = ControlConfig.from_file(config_file).to_dict() if config_file else {}
    saved = Path(out_dir) / "config.json" if out_dir is not None else None
    if saved is not None and saved.exists():
        values.update(ControlConfig.from_dict(read_settings(saved), source=str(saved)).to_dict())
        if values.get("model") and not same_model(values["model"], typed.get("model")):  # resuming imports it
            raise model_refusal(f"the run in {out_dir}", values["model"], action="resuming it")
    env = env or values.get("env")
    if not env:
        raise SpikerollError("a control run needs --env ID, e.g. --env CartPole-v1")
    if values.get("env", env) != env:
        raise SpikerollError(f"--env {env} differs from the env of {saved or config_file} ({values['env']}); "
                             "pass the same --env or another --out")
    values.pop("env", None)
    return ControlConfig.for_env(env, **{**values, **typed}).validate()


def train_control_run(cfg: ControlConfig, out_dir: str | Path = "runs/latest", *, resume: bool = False,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Train a spiking policy for cfg.env (spikeroll.control) and return its report."""
    return train_control(cfg, out_dir, resume=resume, overwrite=overwrite, progress=progress)


def evaluate_control_run(run_dir: str | Path, episodes: int = 100, weight_bits: int | None = None,
                         model: str | None = None) -> dict:
    """A control run's mean policy over `episodes` test episodes: mean_return, std_return; with
    `weight_bits`, its float policy quantised onto the integer Loihi policy (docs/control.md).
    `model`: the FILE.py:FACTORY a --model run needs to be opened (it is imported)."""
    return {"run": str(run_dir), **evaluate_control(run_dir, episodes, weight_bits=weight_bits, model=model)}


def play_run(run_dir: str | Path, out: str | Path, seed: int = 0, model: str | None = None) -> dict:
    """Render one episode of a control run's mean policy to a GIF (or .mp4); `model` as in evaluate_control_run."""
    return play(run_dir, out, seed=seed, model=model)


def export_control_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write a control run's mean policy as a NIR graph. A float policy's input is the raw
    observation vector (normalisation folded into the first layer); an integer policy's
    (neuron loihi) is the quantised normalised observation, its integers stored exactly, and the
    graph's metadata holds the statistics and rules that make it from a raw observation
    (`spikeroll.control.export`)."""
    refuse_module_export(run_dir)
    cfg, policy, stats = load_policy(run_dir)
    if isinstance(policy, IntegerPolicy):
        conventions, metadata = integer_description(cfg.env, policy, stats)
        graph = export_integer_graph(policy.net, (policy.net.sizes[0],), metadata=metadata, conventions=conventions)
    else:
        cfg, net = fold_normalisation(cfg, policy, stats)
        graph = export_graph(net, (net.sizes[0],), metadata={"env": cfg.env, "time_bins": int(cfg.time_bins)})
    return write_graph(graph, Path(out) if out else Path(run_dir) / "network.nir")


def _integer_control_policy(run_dir: str | Path) -> tuple[IntegerPolicy, dict, dict]:
    """An integer control run's mean policy with its export's conventions and metadata."""
    cfg, policy, stats = load_policy(run_dir)
    if not isinstance(policy, IntegerPolicy):
        raise SpikerollError(f"{run_dir} holds a float (neuron lif) policy, which has no Loihi integers; "
                             "export it with spikeroll export, or train with --neuron loihi --weight-bits 8")
    return policy, *integer_description(cfg.env, policy, stats)
