"""The `spikeroll` command line: argument parsing only; the library does the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from spikeroll.config import TrainConfig, parse_widths
from spikeroll.errors import SpikerollError

DEFAULTS = TrainConfig()

# (flag, config field, click type, help). Every option defaults to None so that only the values a
# user typed override the config file (or, with --resume, the run's saved config).
TRAIN_OPTIONS = [
    ("--dataset", "dataset", str, "Dataset: digits (embedded, offline), nmnist (real N-MNIST), nmnist-sim (simulated from --images)."),
    ("--data-dir", "data_dir", str, "Dataset root, e.g. the folder holding N-MNIST's Train/ and Test/."),
    ("--images", "images", str, "For nmnist-sim: an MNIST IDX image file or a folder of images to simulate."),
    ("--time-bins", "time_bins", int, "Time bins T per recording."),
    ("--hidden", "hidden", str, "Hidden LIF layer widths, comma-separated, e.g. 128 or 256,128."),
    ("--beta", "beta", float, "Membrane decay β of every layer (v <- β·v + I)."),
    ("--threshold", "threshold", float, "Spike threshold θ."),
    ("--reset", "reset", click.Choice(["subtract", "zero"]), "Reset after a spike: subtract θ or set to zero."),
    ("--readout", "readout", click.Choice(["membrane", "spikes"]), "Logits: time-averaged membrane of a leaky output layer, or output spike counts."),
    ("--init-gain", "init_gain", float, "Scale of the uniform ±gain/√fan_in weight initialisation."),
    ("--strategy", "strategy", click.Choice(["eggroll", "openes"]), "eggroll (low-rank ES) or openes (full-rank baseline)."),
    ("--rank", "rank", int, "Rank r of EGGROLL's A·Bᵀ perturbations (1 <= r <= min(m, n))."),
    ("--population", "population", int, "Population size N (even: antithetic pairs)."),
    ("--sigma", "sigma", float, "Noise scale σ (> 0)."),
    ("--sigma-final", "sigma_final", float, "Anneal σ to this value over the run (default: constant σ)."),
    ("--shaping", "shaping", click.Choice(["centered_ranks", "zscore", "none"]), "Fitness shaping."),
    ("--temperature", "temperature", float, "Softmax temperature of the cross-entropy fitness."),
    ("--optimizer", "optimizer", click.Choice(["adam", "sgd"]), "Optimizer the ES gradient is handed to (adam = AdamW)."),
    ("--lr", "lr", float, "Learning rate."),
    ("--lr-schedule", "lr_schedule", click.Choice(["constant", "cosine", "linear"]), "Learning-rate schedule over the run."),
    ("--momentum", "momentum", float, "SGD momentum."),
    ("--weight-decay", "weight_decay", float, "Decoupled weight decay."),
    ("--generations", "generations", int, "Generations (optimizer steps) to run in total."),
    ("--batch-size", "batch_size", int, "Minibatch size B shared by all members in a generation."),
    ("--eval-every", "eval_every", int, "Evaluate the mean network on validation/test data every K generations."),
    ("--checkpoint-every", "checkpoint_every", int, "Write checkpoint.pt atomically every K generations (and at the end)."),
    ("--seed", "seed", int, "Seed of the initialisation, noise and minibatch order."),
    ("--device", "device", str, "auto, cpu or cuda[:i]."),
    ("--chunk-pairs", "chunk_pairs", int, "Pairs evaluated at once (default: sized to a memory budget)."),
]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class FriendlyGroup(click.Group):
    """Turns SpikerollError into a one-line message (exit code 2) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpikerollError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; the last checkpoint is intact, continue with --resume")


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spikeroll")
def main():
    """Train spiking neural networks without gradients, using low-rank evolution strategies (EGGROLL)."""


def _train_options(func):
    for flag, field, kind, text in reversed(TRAIN_OPTIONS):
        default = getattr(DEFAULTS, field)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        func = click.option(flag, field, type=kind, default=None, help=f"{text} [default: {shown}]")(func)
    return func


def build_config(config_file, resume_dir, overrides: dict) -> TrainConfig:
    """Defaults < config file < saved config of a resumed run < options typed on the command line."""
    values = TrainConfig().to_dict()
    if config_file:
        values.update(TrainConfig.from_file(config_file).to_dict())
    saved = Path(resume_dir) / "config.json" if resume_dir else None
    if saved and saved.exists():
        values.update(json.loads(saved.read_text()))
    typed = {k: v for k, v in overrides.items() if v is not None}
    if "hidden" in typed:
        typed["hidden"] = parse_widths(typed["hidden"])
    values.update(typed)
    return TrainConfig.from_dict(values).validate()


@main.command()
@click.option("--config", "config_file", type=click.Path(), help="JSON or TOML file of settings (keys as in config.json).")
@_train_options
@click.option("--out", "out_dir", default="runs/latest", show_default=True, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config_file, out_dir, resume, overwrite, quiet, **overrides):
    """Train an SNN with EGGROLL (or full-rank OpenAI-ES) and write a run directory.

    The run directory holds config.json, metrics.jsonl (one line per generation), checkpoint.pt
    and report.json. Killing a run leaves its last checkpoint readable; --resume continues it and
    gives the same result as an uninterrupted run with the same seed.
    """
    from spikeroll.api import train_run

    if resume and overwrite:
        _fail("--resume and --overwrite contradict each other; pass one of them")
    cfg = build_config(config_file, out_dir if resume else None, overrides)
    report = train_run(cfg, out_dir, resume=resume, overwrite=overwrite, progress=not quiet)
    click.echo(json.dumps(report, indent=2))


@main.command(name="eval")
@click.argument("run_dir", type=click.Path())
@click.option("--dataset", default=None, help="Evaluate on another dataset than the run's.")
@click.option("--data-dir", default=None, help="Root of that dataset.")
@click.option("--images", default=None, help="For nmnist-sim: the image file or folder.")
def evaluate(run_dir, dataset, data_dir, images):
    """Accuracy of a trained run's network on the train, validation and test splits."""
    from spikeroll.api import evaluate_run

    click.echo(json.dumps(evaluate_run(run_dir, dataset=dataset, data_dir=data_dir, images=images), indent=2))


if __name__ == "__main__":
    main()
