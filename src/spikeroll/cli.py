"""The `spikeroll` command line: argument parsing only; the library does the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from spikeroll.config import (
    DATASETS,
    NEURONS,
    OBJECTIVES,
    OPTIMIZERS,
    READOUTS,
    RESETS,
    SCHEDULES,
    SHAPINGS,
    STRATEGIES,
    WORKER_DATA,
    TrainConfig,
    parse_rates,
    parse_widths,
)
from spikeroll.errors import SpikerollError

# Each command imports the library inside its body: `spikeroll --help` then loads neither torch nor
# numba (measured: 1.9 s -> 0.1 s, docs/how-it-works.md).

DEFAULTS = TrainConfig().to_dict()

# (flag, config field, click type, help). Every option defaults to None so that only the values a
# user typed override the config file (or, with --resume, the run's saved config).
TRAIN_OPTIONS = [
    ("--dataset", "dataset", click.Choice(DATASETS), "Dataset: digits (embedded, offline), nmnist (real N-MNIST), nmnist-sim (simulated from --images)."),
    ("--data-dir", "data_dir", str, "Dataset root, e.g. the folder holding N-MNIST's Train/ and Test/."),
    ("--images", "images", str, "For nmnist-sim: an MNIST IDX image file or a folder of images to simulate."),
    ("--time-bins", "time_bins", int, "Time bins T per recording."),
    ("--val-fraction", "val_fraction", float, "Share of the training set held out for validation (nmnist, nmnist-sim)."),
    ("--val-ids", "val_ids", str, "nmnist: validate on the Train recordings with these file ids, e.g. 801-1000 (instead of --val-fraction); 'none' clears a config file's."),
    ("--augment-shift", "augment_shift", int, "Shift each training sample by up to this many pixels (0 = off)."),
    ("--augment-drop", "augment_drop", float, "Drop each event bin of a training sample with this probability."),
    ("--pool", "pool", int, "Average-pool frames over pool x pool pixels before the first layer (1 = off)."),
    ("--hidden", "hidden", str, "Hidden LIF layer widths, comma-separated, e.g. 128 or 256,128."),
    ("--model", "model", str, "Train your own torch.nn.Module instead: FILE.py:FACTORY, FACTORY() returns it. Contract: frames (T, B, 2, H, W) in, logits (B, classes) out, the module loops over time itself (docs/modules.md). With --env: FACTORY(obs_dim, action_dim), observations (B, obs_dim) in, (B, action_dim) out (docs/control.md)."),
    ("--beta", "beta", float, "Membrane decay β of every layer (v <- β·v + I)."),
    ("--threshold", "threshold", float, "Spike threshold θ."),
    ("--reset", "reset", click.Choice(RESETS), "Reset after a spike: subtract θ or set to zero."),
    ("--readout", "readout", click.Choice(READOUTS), "Logits: time-averaged membrane of a leaky output layer, or output spike counts."),
    ("--init-gain", "init_gain", float, "Scale of the uniform ±gain/√fan_in weight initialisation."),
    ("--init-from", "init_from", str, "Start from the trained network of this run directory (same layer sizes), e.g. one pretrained on nmnist-sim, or of a NIR graph (FILE.nir, which then sets the network's settings)."),
    ("--strategy", "strategy", click.Choice(STRATEGIES), "eggroll (low-rank ES), openes (full-rank ES baseline), bptt (surrogate-gradient backprop baseline; give it --lr ~0.001-0.005) or egg (integer ±1 updates, --neuron loihi only)."),
    ("--neuron", "neuron", click.Choice(NEURONS), "lif (float) or loihi: an integer network with Loihi's arithmetic (docs/integer.md); needs --weight-bits."),
    ("--weight-bits", "weight_bits", int, "Integer weight width for --neuron loihi: 8, 4 or 2 (ternary)."),
    ("--ptq", "ptq", bool, "With --neuron loihi --strategy bptt: train float weights, quantise only after training (post-training quantisation) instead of straight-through (QAT)."),
    ("--egg-z", "egg_z", float, "--strategy egg: z-score a weight's summed vote must pass to move by ±1."),
    ("--rank", "rank", int, "Rank r of EGGROLL's A·Bᵀ perturbations (1 <= r <= min(m, n))."),
    ("--population", "population", int, "Population size N (even: antithetic pairs)."),
    ("--sigma", "sigma", float, "Noise scale σ (> 0)."),
    ("--sigma-final", "sigma_final", float, "Anneal σ to this value over the run (default: constant σ)."),
    ("--shaping", "shaping", click.Choice(SHAPINGS), "Fitness shaping."),
    ("--temperature", "temperature", float, "Softmax temperature of the cross-entropy fitness."),
    ("--objective", "objective", click.Choice(OBJECTIVES), "Fitness of a member: ce (−cross-entropy), accuracy, synops (ce + λ·SynOps/all-firing SynOps), budget (ce + λ·overshoot above --synops-budget, relative) or early (decide at the first bin whose confidence reaches --early-confidence: ce of that decision + λ·input SynOps read until then); docs/energy.md."),
    ("--synops-weight", "synops_weight", float, "λ of --objective synops and budget."),
    ("--synops-budget", "synops_budget", float, "SynOps per inference that --objective budget allows before its penalty."),
    ("--early-confidence", "early_confidence", float, "--objective early: the readout confidence (max softmax, in (0, 1]) at which a member decides."),
    ("--fitness", "fitness", str, "Your own fitness instead of --objective: FILE.py:FN, FN(logits, labels, counts) -> (N,) (docs/energy.md). The file is imported: a resumed run needs it named again."),
    ("--rate-weight", "rate_weight", float, "--strategy bptt: λ of the spike regulariser, loss = CE + λ·hidden SynOps/all-firing SynOps (read like --synops-weight); docs/energy.md."),
    ("--rate-target", "rate_target", str, "--strategy bptt with --rate-weight: one firing rate per hidden layer, comma-separated; the penalty becomes λ·Σ max(0, rate − target)² instead."),
    ("--optimizer", "optimizer", click.Choice(OPTIMIZERS), "Optimizer the ES gradient is handed to (adam = AdamW)."),
    ("--lr", "lr", float, "Learning rate (the default suits ES; for --strategy bptt use ~0.001-0.005)."),
    ("--lr-schedule", "lr_schedule", click.Choice(SCHEDULES), "Learning-rate schedule over the run."),
    ("--momentum", "momentum", float, "SGD momentum, or Adam's beta1 (how long it averages the gradient)."),
    ("--weight-decay", "weight_decay", float, "Decoupled weight decay."),
    ("--generations", "generations", int, "Generations (optimizer steps) to run in total."),
    ("--batch-size", "batch_size", int, "Minibatch size B shared by all members in a generation."),
    ("--eval-every", "eval_every", int, "Evaluate the mean network on validation/test data every K generations."),
    ("--checkpoint-every", "checkpoint_every", int, "Write checkpoint.pt atomically every K generations (and at the end)."),
    ("--seed", "seed", int, "Seed of the initialisation, noise and minibatch order."),
    ("--device", "device", str, "auto, cpu or cuda[:i]."),
    ("--chunk-pairs", "chunk_pairs", int, "Pairs evaluated at once (default: sized to a memory budget)."),
    ("--workers", "workers", int, "Evaluate the population on K Ray worker processes (needs pip install 'spikeroll[distributed]'); results are bit-identical to one process (docs/distributed.md)."),
    ("--threads-per-worker", "threads_per_worker", int, "torch/kernel threads of each worker (default: the cores divided evenly)."),
    ("--ray-address", "ray_address", str, "Join a running Ray cluster (auto or HOST:PORT, see `ray start`) instead of starting a local one."),
    ("--gpus-per-worker", "gpus_per_worker", float, "Ray GPUs per worker (the PyTorch path on CUDA)."),
    ("--worker-timeout", "worker_timeout", float, "Stop with an error after this many seconds without a live worker."),
    ("--worker-data", "worker_data", click.Choice(WORKER_DATA), "How workers get the training frames: auto (their own frame cache on a shared filesystem when it matches, else Ray's object store) or store."),
]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class FriendlyGroup(click.Group):
    """Turns SpikerollError into a one-line message (exit code 2) instead of a traceback."""

    def invoke(self, ctx):
        """Run the command; its SpikerollError, usage error or Ctrl-C becomes one `error:` line."""
        try:
            return super().invoke(ctx)
        except SpikerollError as exc:
            _fail(str(exc))
        except click.UsageError as exc:  # bad option values: one line, like every other error
            command = exc.ctx.command_path if exc.ctx else "spikeroll"
            _fail(f"{exc.format_message().rstrip('.')}; see `{command} --help`")
        except KeyboardInterrupt:
            _fail("interrupted; the last checkpoint is intact, continue with --resume")


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spikeroll")
def main():
    """Train spiking neural networks without gradients, using low-rank evolution strategies (EGGROLL)."""


def _train_options(func):
    for flag, field, kind, text in reversed(TRAIN_OPTIONS):
        default = DEFAULTS[field]
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        func = click.option(flag, field, type=kind, default=None, help=f"{text} [default: {shown}]")(func)
    return func


def build_config(config_file, resume_dir, overrides: dict) -> TrainConfig:
    """Defaults < config file < saved config of a resumed run < options typed on the command line.

    A resumed run trained with --model (or --fitness) continues only when the same --model (or
    --fitness) is typed again: resuming imports and runs that file, and a run directory may come
    from someone else."""
    from spikeroll.training.rundir import (  # loads torch: see above
        CONFIG,
        check_config,
        fitness_refusal,
        model_refusal,
        same_model,
    )

    values = TrainConfig().to_dict()
    if config_file:
        values.update(TrainConfig.from_file(config_file).to_dict())
    typed = {k: v for k, v in overrides.items() if v is not None}
    saved = Path(resume_dir) / CONFIG if resume_dir else None
    if saved and saved.exists():
        try:
            saved_values = json.loads(saved.read_bytes())
        except (ValueError, RecursionError) as exc:  # invalid JSON or UTF-8, or nested past Python's stack
            raise SpikerollError(f"{saved} is not valid JSON ({exc}); restore it, or start over with "
                                 "--overwrite") from None
        except OSError as exc:
            raise SpikerollError(f"{saved} cannot be read ({exc.strerror}); check its permissions") from None
        saved_cfg = check_config(saved_values, str(saved))
        saved_model = saved_cfg.model
        if saved_model and not same_model(saved_model, typed.get("model")):
            raise model_refusal(f"the run in {resume_dir}", saved_model, action="resuming it")
        if saved_cfg.fitness and not same_model(saved_cfg.fitness, typed.get("fitness")):
            raise fitness_refusal(f"the run in {resume_dir}", saved_cfg.fitness)
        values.update(saved_values)
    if "hidden" in typed:
        typed["hidden"] = parse_widths(typed["hidden"])
    if str(typed.get("val_ids", "")).lower() == "none":  # back to a --val-fraction split
        typed["val_ids"] = None
    values.update(typed)
    return TrainConfig.from_dict(values).validate()


@main.command()
@click.option("--config", "config_file", type=click.Path(), help="JSON or TOML file of settings (keys as in config.json).")
@_train_options
@click.option("--out", "out_dir", default="runs/latest", show_default=True, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--tensorboard", is_flag=True,
              help="Write every generation's metrics to OUT/tensorboard (needs the extra spikeroll[tensorboard]).")
@click.option("--env", default=None,
              help="Train a spiking controller for this Gymnasium environment instead (e.g. CartPole-v1, LunarLander-v3; "
                   "needs spikeroll[control]); its shipped defaults apply, configs/control/ENV.toml, docs/control.md.")
def train(config_file, out_dir, resume, overwrite, quiet, tensorboard, env, **overrides):
    """Train an SNN with EGGROLL (or full-rank OpenAI-ES) and write a run directory.

    The run directory holds config.json, metrics.jsonl (one line per generation), checkpoint.pt
    and report.json. Killing a run leaves its last checkpoint readable; --resume continues it and
    gives the same result as an uninterrupted run with the same seed.
    """
    from spikeroll.api import train_run

    if resume and overwrite:
        _fail("--resume and --overwrite contradict each other; pass one of them")
    from spikeroll.api import is_control_run

    if env or (resume and is_control_run(out_dir)):  # a Gymnasium task (spikeroll.control)
        from spikeroll.api import control_config, train_control_run

        cfg = control_config(env, config_file, out_dir if resume else None, overrides)
        report = train_control_run(cfg, out_dir, resume=resume, overwrite=overwrite, progress=not quiet)
        click.echo(json.dumps(report, indent=2))
        return
    cfg = build_config(config_file, out_dir if resume else None, overrides)
    callbacks = []
    if tensorboard:
        from spikeroll.training.callbacks import TensorBoardCallback

        callbacks.append(TensorBoardCallback())
    report = train_run(cfg, out_dir, resume=resume, overwrite=overwrite, progress=not quiet, callbacks=callbacks)
    click.echo(json.dumps(report, indent=2))


@main.command(name="eval")
@click.argument("run_dir", type=click.Path())
@click.option("--dataset", default=None, type=click.Choice(DATASETS), help="Evaluate on another dataset than the run's.")
@click.option("--data-dir", default=None, help="Root of that dataset.")
@click.option("--images", default=None, help="For nmnist-sim: the image file or folder.")
@click.option("--tta-shift", default=0, show_default=True, type=click.IntRange(min=0),
              help="Test-time augmentation: average class probabilities over every shift of up to this many "
                   "pixels ((2s+1)² passes per recording; 0 = one pass).")
@click.option("--model", default=None, metavar="FILE.py:FACTORY",
              help="For a run trained with --model: the same FILE.py:FACTORY. Naming it confirms that the file "
                   "may be imported and run; a run directory never does so by itself.")
@click.option("--early-exit-confidence", default=None, type=float, metavar="C",
              help="Also decide each recording at the first time bin where the readout's softmax confidence "
                   "reaches C (0 < C <= 1): val_/test_early_accuracy, early_bins and the SynOps actually spent "
                   "(float LIF network; docs/energy.md).")
@click.option("--episodes", default=100, show_default=True, type=click.IntRange(min=1),
              help="For a control run (--env): test episodes its mean policy plays.")
@click.option("--weight-bits", default=None, type=click.Choice(["8", "4", "2"]),
              help="For a float control run (--env): play its policy quantised onto the integer Loihi policy "
                   "with weights of this many bits (post-training quantisation, docs/control.md).")
def evaluate(run_dir, dataset, data_dir, images, tta_shift, model, early_exit_confidence, episodes, weight_bits):
    """Accuracy of a trained run's network (or of a NIR graph, FILE.nir) on the train, validation and
    test splits, with its SynOps per inference and firing rates on validation and test; for a
    control run (--env), the mean return of its policy over --episodes test episodes."""
    from spikeroll.api import evaluate_control_run, evaluate_run, is_control_run

    if is_control_run(run_dir):
        bits = None if weight_bits is None else int(weight_bits)
        click.echo(json.dumps(evaluate_control_run(run_dir, episodes, weight_bits=bits, model=model), indent=2))
        return
    if weight_bits is not None:
        _fail("--weight-bits applies to a control run's eval; a classification run is quantised by training it "
              "with --neuron loihi --weight-bits 8")

    click.echo(json.dumps(evaluate_run(run_dir, dataset=dataset, data_dir=data_dir, images=images,
                                       tta_shift=tta_shift, model=model,
                                       early_exit_confidence=early_exit_confidence), indent=2))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", default=None, help="The .nir file to write [default: RUN_DIR/network.nir].")
@click.option("--model", default=None, metavar="FILE.py:FACTORY",
              help="For a run trained with --model: the same FILE.py:FACTORY. Naming it confirms that the file "
                   "may be imported and run; a run directory never does so by itself.")
def export(run_dir, out, model):
    """Write a trained run's network as a NIR graph, for neuromorphic chips and other simulators.

    Needs the extra spikeroll[nir]. A network trained with --reset subtract (the default) is written
    as zero-reset, which NIR can express; a warning says so (docs/deploy.md measures the difference).
    An integer run (--neuron loihi) is written with its integer weights and Loihi constants exact;
    an integer control run's graph metadata also holds how a raw observation becomes its input.
    """
    import warnings

    from spikeroll.api import export_control_run, export_run, is_control_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if is_control_run(run_dir):  # float: normalisation folded into layer 0; integer: stated in metadata
            path = export_control_run(run_dir, out)
        else:
            path = export_run(run_dir, out, model=model)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(str(path))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", default=None, help="A .gif (or .mp4, needs imageio-ffmpeg) [default: RUN_DIR/episode.gif].")
@click.option("--seed", default=0, show_default=True, type=int, help="The episode's environment seed.")
@click.option("--model", default=None, metavar="FILE.py:FACTORY",
              help="For a run trained with --model: the same FILE.py:FACTORY. Naming it confirms that the file "
                   "may be imported and run; a run directory never does so by itself.")
def play(run_dir, out, seed, model):
    """Render one episode of a control run's (--env) trained policy to a GIF, to watch the controller."""
    from spikeroll.api import play_run

    result = play_run(run_dir, out or Path(run_dir) / "episode.gif", seed=seed, model=model)
    click.echo(json.dumps(result, indent=2))


@main.command(name="export-loihi")
@click.argument("run_dir", type=click.Path())
@click.option("--out", default=None, help="A .json or .npz file [default: RUN_DIR/loihi.json].")
@click.option("--model", default=None, metavar="FILE.py:FACTORY",
              help="For a run trained with --model: the same FILE.py:FACTORY. Naming it confirms that the file "
                   "may be imported and run; a run directory never does so by itself.")
def export_loihi(run_dir, out, model):
    """Write an integer run's (--neuron loihi) weights, weight exponents and neuron constants as
    Loihi-style parameters a Lava user can load (docs/integer.md); for a control run, with its
    observation statistics and action rule (docs/control.md)."""
    from spikeroll.api import export_loihi_run

    click.echo(str(export_loihi_run(run_dir, out, model=model)))


@main.command()
@click.option("--hidden", default="128", show_default=True, help="Hidden LIF layer widths, comma-separated.")
@click.option("--population", default=512, show_default=True, help="Population size N (even).")
@click.option("--batch-size", default=64, show_default=True, help="Minibatch size B.")
@click.option("--time-bins", default=10, show_default=True, help="Time bins T per sample.")
@click.option("--rank", default=1, show_default=True, help="EGGROLL rank r.")
@click.option("--input", "input_size", default=2312, show_default=True, help="Input features per time bin (2312 = 2x34x34).")
@click.option("--density", default=0.05, show_default=True, help="Fraction of input bits that are on in the synthetic frames.")
@click.option("--repeats", default=3, show_default=True, help="Timed repeats per case (the median is reported).")
@click.option("--warmup", default=1, show_default=True, help="Untimed warm-up runs per case.")
@click.option("--threads", type=int, default=None, help="torch threads for every case [default: torch's default].")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:i] or auto.")
@click.option("--cases", default="eggroll,openes,inference", show_default=True,
              help="Cases to measure, comma-separated: eggroll, openes, inference, bptt (one BPTT step).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def bench(hidden, population, batch_size, time_bins, rank, input_size, density, repeats, warmup, threads, device,
          cases, as_json):
    """Time one generation of EGGROLL vs full-rank OpenAI-ES vs plain inference, with peak memory.

    Same network, synthetic data and thread count for every case; each case runs in a fresh process.
    """
    from spikeroll.tools.bench import BenchConfig, format_report, parse_cases, run_bench

    cfg = BenchConfig(hidden=parse_widths(hidden), population=population, batch_size=batch_size,
                      time_bins=time_bins, rank=rank, input=input_size, density=density, repeats=repeats,
                      warmup=warmup, threads=threads, device=device).validate()
    result = run_bench(cfg, parse_cases(cases))
    click.echo(json.dumps(result) if as_json else format_report(result))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", default=None, help="Folder for the PNGs [default: RUN_DIR/plots for one run, ./plots for several].")
@click.option("--sample", default=0, show_default=True, help="Validation sample shown in the spike raster.")
@click.option("--no-raster", is_flag=True, help="Learning curves only (no data loading).")
def plot(run_dirs, out_dir, sample, no_raster):
    """Learning curves of one or more runs (overlaid) and a spike raster of each trained network."""
    from spikeroll.tools.plot import plot_runs

    for path in plot_runs(run_dirs, out_dir, raster=not no_raster, sample=sample,
                          warn=lambda message: click.echo(f"warning: {message}", err=True)):
        click.echo(str(path))


COMPARE_FIELDS = ("dataset", "data_dir", "images", "time_bins", "val_fraction", "val_ids", "augment_shift", "augment_drop",
                  "pool", "hidden", "beta", "threshold", "reset", "readout", "init_gain", "population", "sigma",
                  "optimizer", "lr", "weight_decay", "batch_size", "eval_every", "seed", "device")


def _compare_options(func):
    for flag, field, kind, text in reversed([o for o in TRAIN_OPTIONS if o[1] in COMPARE_FIELDS]):
        default = 10 if field == "eval_every" else DEFAULTS[field]
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text = "ES learning rate (bptt uses --bptt-lr)." if field == "lr" else text
        func = click.option(flag, field, type=kind, default=None, help=f"{text} [default: {shown}]")(func)
    return func


@main.command()
@click.option("--config", "config_file", type=click.Path(), help="JSON or TOML file of base settings.")
@_compare_options
@click.option("--budget-seconds", type=float, default=None, help="Stop each run after this many training seconds [default: 60 unless --generations is given].")
@click.option("--generations", type=int, default=None, help="Optimizer steps per run (with --budget-seconds: a cap and the lr schedule's horizon).")
@click.option("--ranks", default="1,4,8", show_default=True, help="EGGROLL ranks, comma-separated (each <= the smallest layer width).")
@click.option("--strategies", default="eggroll,openes,bptt", show_default=True, help="Which of eggroll,openes,bptt to run.")
@click.option("--bptt-lr", type=float, default=2e-3, show_default=True, help="BPTT's learning rate.")
@click.option("--out", "out_dir", default="runs/compare", show_default=True, help="Folder for the run directories, compare.md and compare.png.")
@click.option("--overwrite", is_flag=True, help="Replace runs already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare(config_file, budget_seconds, generations, ranks, strategies, bptt_lr, out_dir, overwrite, quiet, **overrides):
    """EGGROLL at each rank, OpenAI-ES and BPTT on the same network, data and budget.

    Each run is an ordinary run directory under --out, trained in its own process (its peak RSS is
    measured there). Writes OUT/compare.md (the table below) and OUT/compare.png (accuracy against
    training time), and prints the table.
    """
    from spikeroll.tools.compare import compare_runs, parse_ranks, parse_strategies

    ranks, strategies = parse_ranks(ranks), parse_strategies(strategies)
    cfg = build_config(config_file, None, overrides)
    if overrides.get("eval_every") is None and cfg.eval_every == DEFAULTS["eval_every"]:
        cfg.eval_every = 10  # denser accuracy-against-time curves than a training run's default
    compare_runs(cfg, out_dir, ranks=ranks, strategies=strategies, generations=generations,
                 budget_seconds=budget_seconds, bptt_lr=bptt_lr, overwrite=overwrite, progress=not quiet,
                 echo=click.echo)


@main.command()
@click.option("--config", "config_file", type=click.Path(), help="JSON or TOML file of base settings.")
@_train_options
@click.option("--es-weights", default="0,50,200,1000", show_default=True, help="ES points: --objective synops at each --synops-weight λ ('' for none).")
@click.option("--es-budgets", default="", help="More ES points: --objective budget at each --synops-budget S (SynOps per inference).")
@click.option("--loihi-weights", default="", help="ES points on the integer network (--neuron loihi, int8 unless --weight-bits) at each λ.")
@click.option("--decide-weights", default="", help="ES points trained to decide early: --objective early at each --synops-weight λ (confidence: --early-confidence).")
@click.option("--bptt-weights", default="0,50,200,1000", show_default=True, help="BPTT points: --rate-weight λ ('' for none).")
@click.option("--bptt-lr", type=float, default=2e-3, show_default=True, help="BPTT's learning rate.")
@click.option("--bptt-generations", type=int, default=None, help="BPTT's optimizer steps [default: --generations].")
@click.option("--early-exit", default="", help="Also evaluate every float point deciding early at each readout confidence C (e.g. 0.9,0.99): its accuracy against the SynOps actually spent.")
@click.option("--out", "out_dir", default="runs/pareto", show_default=True, help="Folder for the run directories, pareto.md and pareto.png.")
@click.option("--overwrite", is_flag=True, help="Retrain points already in --out (default: skip finished ones, resume interrupted ones).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def pareto(config_file, es_weights, es_budgets, loihi_weights, decide_weights, bptt_weights, bptt_lr, bptt_generations, early_exit,
           out_dir, overwrite, quiet, **overrides):
    """Accuracy against SynOps: ES (--objective synops/budget) and BPTT (--rate-weight) at several weights.

    Each point is an ordinary run directory under --out, trained in its own process one after another;
    finished points are skipped, so rerunning continues a sweep. Writes OUT/pareto.md and OUT/pareto.png
    (validation accuracy against SynOps per inference, each method's non-dominated front marked).
    """
    from spikeroll.tools.pareto import pareto_sweep, parse_values, plan_points

    # --rate-target shapes the BPTT points only: the base (and the ES points) would refuse it
    rate_target = overrides.pop("rate_target", None)
    cfg = build_config(config_file, None, overrides)
    points = plan_points(cfg, parse_values(es_weights, "--es-weights"), parse_values(bptt_weights, "--bptt-weights"),
                         es_budgets=parse_values(es_budgets, "--es-budgets"),
                         loihi_weights=parse_values(loihi_weights, "--loihi-weights"),
                         decide_weights=parse_values(decide_weights, "--decide-weights"), bptt_lr=bptt_lr,
                         bptt_rate_target=parse_rates(rate_target) if rate_target else None,
                         bptt_generations=bptt_generations)
    pareto_sweep(cfg, out_dir, points, overwrite=overwrite, progress=not quiet, echo=click.echo,
                 early=parse_values(early_exit, "--early-exit"))


@main.group()
def data():
    """Inspect datasets."""


@data.command()
@click.option("--dataset", default="digits", show_default=True, type=click.Choice(DATASETS), help="Dataset to inspect.")
@click.option("--data-dir", default=None, help="Dataset root (nmnist: the folder holding Train/ and Test/).")
@click.option("--images", default=None, help="For nmnist-sim: an MNIST IDX image file or a folder of images.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(dataset, data_dir, images, as_json):
    """Per-class counts, events per sample, ON fraction, recording length and saccade timing."""
    from spikeroll.data import dataset_stats
    from spikeroll.data.stats import format_stats

    result = dataset_stats(dataset, data_dir, images=images)
    click.echo(json.dumps(result, indent=2) if as_json else format_stats(result))


if __name__ == "__main__":
    main()
