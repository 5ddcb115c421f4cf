"""Run configuration: one flat dataclass, saved as config.json in every run directory."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

from spikeroll.errors import SpikerollError

# The choices of every enumerated setting, here so that the CLI, the validation and the code that
# acts on them (spikeroll.data, spikeroll.nets.model, spikeroll.es) name one list.
DATASETS = ("digits", "nmnist", "nmnist-sim")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
RESETS = ("subtract", "zero")
READOUTS = ("membrane", "spikes")
SHAPINGS = ("centered_ranks", "zscore", "none")
# bptt: surrogate-gradient baseline (spikeroll.es.bptt); egg: integer ±1 updates (spikeroll.es.egg)
STRATEGIES = ("eggroll", "openes", "bptt", "egg")
NEURONS = ("lif", "loihi")
OBJECTIVES = ("ce", "accuracy", "synops", "budget", "early")  # what a member's fitness is (spikeroll.es.objectives)
WORKER_DATA = ("auto", "store")  # how Ray workers get the training frames (spikeroll.training.distributed)

# Bounds taken from the data. A leaf module cannot import spikeroll.data, so these repeat its
# constants; tests/test_attack_inputs.py checks that they agree.
SENSOR_PIXELS = 34  # spikeroll.data.events.SENSOR: every dataset's frames are 34 x 34 pixels
MAX_TIME_BINS = 315_000  # spikeroll.data.events.RECORDING_US: one bin per microsecond of a recording
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
SEED_RANGE = (-2**63, 2**64)  # what torch.manual_seed accepts


@dataclass
class TrainConfig:
    """Every setting of a run; `validate` checks types, finiteness and ranges (one path for the CLI,
    config files, checkpoints and NIR metadata)."""

    # data
    dataset: str = "digits"
    data_dir: str | None = None
    images: str | None = None
    time_bins: int = 10
    val_fraction: float = 0.2
    val_ids: str | None = None  # nmnist: validate on the recordings with these file ids, e.g. "801-1000"
    augment_shift: int = 0  # random spatial shift of training samples, in pixels (0 = off)
    augment_drop: float = 0.0  # probability of dropping each event bin of a training sample
    # network
    hidden: list[int] = field(default_factory=lambda: [128])
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"
    readout: str = "membrane"
    init_gain: float = 1.0
    model: str | None = None  # FILE.py:FACTORY, a user's torch.nn.Module instead of the LIF stack
    init_from: str | None = None  # start from the network of this run directory (e.g. pretrained on simulated data)
    neuron: str = "lif"  # "loihi": integer network with Loihi's arithmetic (spikeroll.nets.integer)
    weight_bits: int | None = None  # loihi: 8, 4 or 2 (ternary) bit weights
    ptq: bool = False  # loihi + bptt: train float weights, quantise only the evaluated network
    egg_z: float = 2.0  # strategy egg: a weight moves ±1 where |Σ sign·A·Bᵀ| passes this z-score
    # strategy
    strategy: str = "eggroll"
    rank: int = 1
    population: int = 512
    sigma: float = 0.05
    sigma_final: float | None = None  # σ decays to this along the lr schedule's shape
    shaping: str = "centered_ranks"
    temperature: float = 1.0
    # objective (spikeroll.es.objectives, docs/energy.md)
    objective: str = "ce"  # ce, accuracy, synops (ce + λ·synops/reference) or budget (penalty above S)
    synops_weight: float = 1.0  # λ of the synops and budget objectives
    synops_budget: float | None = None  # S, SynOps per inference, of the budget objective
    early_confidence: float = 0.9  # C of the early objective: decide at the first bin whose confidence reaches C
    fitness: str | None = None  # FILE.py:FN, a user's fitness(logits, labels, counts) -> (N,) instead of objective
    # BPTT's spike regulariser (spikeroll.es.bptt): λ·hidden SynOps / reference, or λ·Σ_l max(0, rate_l − target_l)²
    rate_weight: float = 0.0
    rate_target: list[float] | None = None  # one target firing rate per hidden layer (spikes per neuron and bin)
    # optimiser
    optimizer: str = "adam"
    lr: float = 0.02
    lr_schedule: str = "cosine"
    momentum: float = 0.9  # SGD momentum, or Adam's beta1
    weight_decay: float = 0.0
    # loop
    generations: int = 150
    batch_size: int = 128
    eval_every: int = 25
    checkpoint_every: int = 25
    seed: int = 0
    device: str = "auto"
    chunk_pairs: int | None = None  # pairs evaluated at once; None = sized to a memory budget
    pool: int = 1  # average-pool each frame over pool x pool pixels before the first layer
    # distributed (spikeroll.training.distributed, extra `distributed`): where units run, never what they compute
    workers: int = 0  # Ray worker processes; 0 = evaluate in this process
    threads_per_worker: int | None = None  # None = the cores divided evenly among the workers
    ray_address: str | None = None  # join a running cluster: "auto" or HOST:PORT (None: start a local one)
    gpus_per_worker: float = 0.0  # Ray GPUs per worker (the PyTorch path on CUDA)
    worker_timeout: float = 60.0  # seconds with no live worker before the run stops with an error
    worker_data: str = "auto"  # auto: shared filesystem where a worker's copy matches, else object store; store

    def validate(self) -> TrainConfig:
        """This config when every setting has its type, is finite and lies in range; else a one-line
        SpikerollError naming the setting and the fix."""
        check_types({name: vars(self)[name] for name in FIELD_KINDS})
        checks = [
            (self.strategy in STRATEGIES, f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"),
            (math.isfinite(self.sigma) and self.sigma > 0, f"sigma={self.sigma} must be > 0; try --sigma 0.05"),
            (self.sigma_final is None or self.sigma_final > 0, f"sigma_final={self.sigma_final} must be > 0"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr={self.lr} must be > 0; try --lr 0.02"),
            (self.temperature > 0, f"temperature={self.temperature} must be > 0"),
            (self.generations >= 1, f"generations={self.generations} must be >= 1"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
            (self.time_bins >= 1, f"time_bins={self.time_bins} must be >= 1"),
            (len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
             f"hidden={self.hidden} must list positive widths, e.g. --hidden 128 or --hidden 256,128"),
            (self.optimizer in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"),
            (self.pool >= 1, f"pool={self.pool} must be >= 1; try --pool 1 (no pooling) or --pool 2"),
            (not self.model or self.pool == 1, f"--model gets the frames as they are: pool inside the module "
             f"instead of --pool {self.pool}"),
            (self.lr_schedule in SCHEDULES,
             f"unknown lr schedule {self.lr_schedule!r}; choose one of {', '.join(SCHEDULES)}"),
            (self.shaping in SHAPINGS, f"unknown shaping {self.shaping!r}; choose one of {', '.join(SHAPINGS)}"),
            (self.reset in RESETS, f"unknown reset {self.reset!r}; choose one of {', '.join(RESETS)}"),
            (self.readout in READOUTS, f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}"),
            (self.eval_every >= 1 and self.checkpoint_every >= 1, "eval_every and checkpoint_every must be >= 1"),
            (0.0 < self.val_fraction < 1.0, f"val_fraction={self.val_fraction} must be in (0, 1)"),
            (0 <= self.augment_shift < SENSOR_PIXELS, f"augment_shift={self.augment_shift} must be between 0 and "
             f"{SENSOR_PIXELS - 1} (frames are {SENSOR_PIXELS} pixels wide); try --augment-shift 2"),
            (0.0 <= self.augment_drop < 1.0, f"augment_drop={self.augment_drop} must be in [0, 1)"),
            (0.0 <= self.momentum < 1.0, f"momentum={self.momentum} must be in [0, 1); try --momentum 0.9"),
            *range_checks(self),
            *integer_checks(self),
            *distributed_checks(self),
            *objective_checks(self),
        ]
        for ok, message in checks:
            if not ok:
                raise SpikerollError(message)
        check_population(self.population)
        if self.strategy == "eggroll":
            check_rank(self.rank)  # >= 1 here; the upper bound needs the network's shapes (checked when built)
        return self

    def to_dict(self) -> dict:
        """The settings as a plain dict (what config.json holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> TrainConfig:
        """A config from a mapping of settings (a config file's, a checkpoint's, a Ray worker's); unknown
        keys and values of the wrong type are one-line errors naming `source`. Ranges are checked by
        `validate`."""
        if not isinstance(values, dict):
            raise SpikerollError(f"{source or 'config'}: a config is a table of settings (keys as in config.json), "
                                 f"not {type(values).__name__}; see `spikeroll train --help`")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(key if isinstance(key, str) and key.isidentifier() else _show(key, 40)
                         for key in set(values) - names)
        if unknown:
            raise SpikerollError(f"{source or 'config'}: unknown setting(s) {', '.join(unknown)}; "
                                 "see `spikeroll train --help`")
        values = dict(values)
        hidden = values.get("hidden")
        if isinstance(hidden, str):
            values["hidden"] = parse_widths(hidden)
        elif _is_int(hidden):  # one width
            values["hidden"] = [hidden]
        target = values.get("rate_target")
        if isinstance(target, str):
            values["rate_target"] = parse_rates(target)
        elif _has_kind(target, "float"):  # one rate
            values["rate_target"] = [target]
        check_types(values, source)
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """A config from a JSON or TOML file (`--config`); any problem is a one-line error naming the file."""
        return cls.from_dict(read_settings(path), source=str(path))


def read_settings(path: str | Path):
    """The parsed contents of a JSON or TOML settings file (`--config`; control configs too); a
    missing, unreadable or malformed file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise SpikerollError(f"config file {path} does not exist; check the --config path")
    loads = _toml_loads if path.suffix == ".toml" else json.loads
    try:
        return loads(path.read_text())
    except OSError as exc:
        raise SpikerollError(f"config file {path} cannot be read ({exc.strerror or exc}); "
                             "check its permissions") from None
    except (ValueError, RecursionError) as exc:  # json's and tomllib's decode errors are both ValueErrors
        raise SpikerollError(f"config file {path} is not valid JSON/TOML ({_first_line(exc)}); "
                             "fix the file") from None


def _toml_loads(text: str) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        try:  # Python 3.10: tomli, the parser tomllib was made from (a dependency there)
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SpikerollError("reading a TOML config on Python 3.10 needs tomli; pip install 'tomli>=1.1' "
                                 "(or use a JSON config)") from None
    return tomllib.loads(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _short(text.splitlines()[0] if text else type(exc).__name__, 200)


def _show(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters, for an error message."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past Python's 4,300-digit limit, a too deeply nested list
        text = f"<{type(value).__name__} too large to print>"
    return _short(text, limit)


def _short(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters: a value quoted in an error message stays on one short line."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# The type of every setting, read from TrainConfig's annotations: (kind, None allowed).
_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list[int]": "widths", "list[float]": "numbers"}


def _field_kinds() -> dict[str, tuple[str, bool]]:
    kinds = {}
    for f in dataclasses.fields(TrainConfig):
        parts = [part.strip() for part in str(f.type).split("|")]
        optional = "None" in parts
        (base,) = [part for part in parts if part != "None"]
        kinds[f.name] = (_KINDS[base], optional)
    return kinds


FIELD_KINDS = _field_kinds()
EXPECTED = {"int": "a whole number (64 bits at most)", "float": "a number", "str": "a string", "bool": "true or false",
            "widths": "a list of positive whole numbers, e.g. [128] or [256, 128]",
            "numbers": "a list of numbers, e.g. [0.05] or [0.05, 0.1]"}
DEFAULTS = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(TrainConfig)}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # bool is a subclass of int


INT_LIMIT = 2**64  # no integer setting needs more bits (the seed uses all 64)


def _has_kind(value, kind: str) -> bool:
    if kind == "int":
        return _is_int(value) and abs(value) < INT_LIMIT
    if kind == "float":  # a whole number is fine where a float is expected
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "numbers":
        return isinstance(value, (list, tuple)) and all(_has_kind(v, "float") and _finite(v) for v in value)
    return isinstance(value, (list, tuple)) and all(_is_int(width) and abs(width) < INT_LIMIT for width in value)


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def check_types(values: dict, source: str | None = None) -> None:
    """Every setting in `values` has its field's type (ints are fine where floats are expected; bool
    is not an int) and every float setting is finite; else a one-line SpikerollError naming it."""
    prefix = f"{source}: " if source else ""
    for name, value in values.items():
        kind, optional = FIELD_KINDS[name]
        if value is None and optional:
            continue
        flag = "--" + name.replace("_", "-")
        example = DEFAULTS[name]
        example = ",".join(map(str, example)) if isinstance(example, list) else example
        hint = f"; e.g. {flag} {example}" if example is not None and kind not in ("bool", "widths", "numbers") else ""
        if not _has_kind(value, kind):
            expected = EXPECTED[kind] + (" (or left out)" if optional else "")
            raise SpikerollError(f"{prefix}{name} must be {expected}, got {_show(value)} "
                                 f"({type(value).__name__}){hint}")
        if kind == "float" and not _finite(value):
            raise SpikerollError(f"{prefix}{name}={_show(value)} must be a finite number{hint}")


def range_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """Ranges of the settings that the checks in `validate` above leave open."""
    device_ok = DEVICE_PATTERN.fullmatch(cfg.device) is not None
    return [
        (cfg.dataset in DATASETS, f"unknown dataset {_show(cfg.dataset)}; choose one of {', '.join(DATASETS)}"),
        (cfg.time_bins <= MAX_TIME_BINS, f"time_bins={cfg.time_bins} is more than one bin per microsecond of a "
         f"recording (at most {MAX_TIME_BINS}); try --time-bins 10"),
        (cfg.pool <= SENSOR_PIXELS, f"pool={cfg.pool} is larger than the {SENSOR_PIXELS}-pixel frames; "
         "try --pool 2"),
        (0.0 <= cfg.beta <= 1.0, f"beta={cfg.beta} is outside [0, 1]; pass a decay factor such as --beta 0.9"),
        (cfg.threshold > 0, f"threshold={cfg.threshold} must be > 0; try --threshold 1.0"),
        (cfg.init_gain > 0, f"init_gain={cfg.init_gain} must be > 0; try --init-gain 1.0"),
        (cfg.weight_decay >= 0, f"weight_decay={cfg.weight_decay} must be >= 0; try --weight-decay 0"),
        (cfg.chunk_pairs is None or cfg.chunk_pairs >= 1,
         f"chunk_pairs={cfg.chunk_pairs} must be >= 1 (or left out: sized to a memory budget); try --chunk-pairs 64"),
        (SEED_RANGE[0] <= cfg.seed < SEED_RANGE[1], f"seed={_short(str(cfg.seed))} is out of range; "
         "it must fit 64 bits, e.g. --seed 0"),
        (device_ok, f"unknown device {_show(cfg.device)}; choose auto, cpu, cuda or cuda:N (e.g. cuda:0)"),
    ]


def neuron_checks(neuron: str, weight_bits: int | None, what: str) -> list[tuple[bool, str]]:
    """The neuron and its weight bits, shared by classification and control: a known neuron, 8, 4 or
    2 bits for loihi, and no bits without it (`what`: "network" or "policy", for the messages)."""
    loihi = neuron == "loihi"
    return [
        (neuron in NEURONS, f"unknown neuron {neuron!r}; choose one of {', '.join(NEURONS)}"),
        (not loihi or weight_bits in (2, 4, 8),
         f"weight_bits={weight_bits} is not supported for --neuron loihi; choose --weight-bits 8, 4 or 2 (ternary)"),
        (loihi or weight_bits is None,
         f"weight_bits={weight_bits} needs the integer {what}; add --neuron loihi (or drop --weight-bits)"),
    ]


def integer_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """Settings of integer networks (--neuron loihi, --weight-bits, --strategy egg, --ptq)."""
    loihi = cfg.neuron == "loihi"
    return [
        *neuron_checks(cfg.neuron, cfg.weight_bits, "network"),
        (cfg.strategy != "egg" or loihi, "strategy egg updates integer weights; add --neuron loihi --weight-bits 8"),
        (not loihi or cfg.strategy != "openes",
         "--neuron loihi takes low-rank noise; use --strategy eggroll or egg (or bptt), not openes"),
        (not cfg.ptq or (loihi and cfg.strategy == "bptt"),
         "ptq (post-training quantisation) applies to --neuron loihi --strategy bptt only; drop --ptq"),
        (math.isfinite(cfg.egg_z) and cfg.egg_z > 0, f"egg_z={cfg.egg_z} must be > 0; try --egg-z 2"),
    ]


def distributed_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """Settings of Ray workers (--workers, --threads-per-worker, --gpus-per-worker, --worker-timeout)."""
    return [
        (cfg.workers >= 0, f"workers={cfg.workers} must be >= 0 (0 = this process only); try --workers 2"),
        (cfg.workers <= max(1, cfg.population // 2), f"workers={cfg.workers} is more than the population's "
         f"{cfg.population // 2} antithetic pairs (a worker evaluates at least one pair); try --workers 2"),
        (cfg.threads_per_worker is None or cfg.threads_per_worker >= 1,
         f"threads_per_worker={cfg.threads_per_worker} must be >= 1; try --threads-per-worker 1"),
        (cfg.gpus_per_worker >= 0, f"gpus_per_worker={cfg.gpus_per_worker} must be >= 0"),
        (cfg.worker_timeout > 0, f"worker_timeout={cfg.worker_timeout} must be > 0 seconds; try --worker-timeout 60"),
        (cfg.worker_data in WORKER_DATA,
         f"unknown worker_data {cfg.worker_data!r}; choose one of {', '.join(WORKER_DATA)}"),
        (not (cfg.workers or cfg.ray_address) or cfg.strategy in ("eggroll", "openes"),
         f"--workers runs eggroll and openes (on the LIF network or a --model module); strategy {cfg.strategy!r} "
         "runs in one process: drop --workers/--ray-address"),
    ]


def objective_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """Settings of the objective (--objective, --synops-weight, --synops-budget, --fitness)."""
    default = cfg.objective == "ce" and not cfg.fitness
    return [
        (cfg.objective in OBJECTIVES,
         f"unknown objective {_show(cfg.objective)}; choose one of {', '.join(OBJECTIVES)}"),
        (_finite(cfg.synops_weight) and cfg.synops_weight >= 0,
         f"synops_weight={cfg.synops_weight} must be a finite number >= 0; try --synops-weight 1"),
        (cfg.synops_budget is None or (_finite(cfg.synops_budget) and cfg.synops_budget >= 0),
         f"synops_budget={cfg.synops_budget} must be a finite number >= 0 (SynOps per inference)"),
        (cfg.objective != "budget" or bool(cfg.synops_budget),
         "--objective budget needs --synops-budget S > 0 (SynOps per inference of the mean network)"),
        (_finite(cfg.early_confidence) and 0.0 < cfg.early_confidence <= 1.0,
         f"early_confidence={cfg.early_confidence} must be in (0, 1]; try --early-confidence 0.9"),
        (cfg.objective != "early" or (cfg.neuron == "lif" and not cfg.model and not cfg.fitness),
         "--objective early needs the float LIF network (--neuron lif, no --model, no --fitness)"),
        (default or cfg.strategy != "bptt", "--strategy bptt trains on the cross-entropy (--objective and --fitness "
         "apply to eggroll, openes and egg); to trade accuracy for SynOps with BPTT use --rate-weight λ"),
        *rate_checks(cfg),
    ]


def rate_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """Settings of BPTT's spike regulariser (--rate-weight, --rate-target)."""
    targets = cfg.rate_target
    regularised = cfg.rate_weight > 0 or targets is not None
    return [
        (_finite(cfg.rate_weight) and cfg.rate_weight >= 0,
         f"rate_weight={cfg.rate_weight} must be a finite number >= 0; try --rate-weight 1"),
        (targets is None or all(0.0 <= t <= 1.0 for t in targets),
         f"rate_target={targets} must hold firing rates in [0, 1] (spikes per neuron and bin); try --rate-target 0.05"),
        (targets is None or len(targets) == len(cfg.hidden),
         f"rate_target={targets} needs one rate per hidden layer ({len(cfg.hidden)} for --hidden "
         f"{','.join(map(str, cfg.hidden))})"),
        (targets is None or cfg.rate_weight > 0, "--rate-target needs --rate-weight λ > 0 (the penalty's weight)"),
        (not regularised or cfg.strategy == "bptt", "--rate-weight/--rate-target regularise --strategy bptt; for ES "
         "use --objective synops --synops-weight λ"),
        (not regularised or (cfg.neuron == "lif" and not cfg.model), "--rate-weight/--rate-target need the float "
         "LIF network (--neuron lif, no --model)"),
    ]


def parse_rates(text: str) -> list[float]:
    """'0.05,0.1' -> [0.05, 0.1] (--rate-target); anything but numbers is a one-line error (ranges: validate)."""
    try:
        rates = [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SpikerollError(f"--rate-target {text!r} is not a comma-separated list of rates; "
                             "try --rate-target 0.05") from None
    if not rates:
        raise SpikerollError("--rate-target is empty; give one rate per hidden layer, e.g. --rate-target 0.05")
    return rates


def parse_widths(text: str) -> list[int]:
    """'256,128' -> [256, 128]; anything but positive whole numbers is a one-line error."""
    try:
        widths = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SpikerollError(f"--hidden {text!r} is not a comma-separated list of widths; "
                             "try --hidden 128,64") from None
    if not widths or any(w < 1 for w in widths):
        raise SpikerollError(f"--hidden {text!r} must list positive widths; try --hidden 128")
    return widths


# Settings that define the network and the experiment: a checkpoint can resume only if they match.
ARCHITECTURE_KEYS = ("dataset", "time_bins", "pool", "model", "hidden", "beta", "threshold", "reset", "readout",
                     "strategy", "rank", "population", "seed", "optimizer", "neuron", "weight_bits", "ptq")


def check_population(population: int) -> None:
    """The one population check: an even number >= 2, since members come in antithetic pairs."""
    if not _is_int(population):
        raise SpikerollError(f"population={_show(population)} must be a whole, even number >= 2; "
                             "e.g. --population 512")
    if population < 2 or population % 2:
        raise SpikerollError(f"population={population} must be an even number >= 2 (members come in antithetic "
                             f"pairs); try --population {max(2, population + population % 2)}")


def check_rank(rank: int, matrix_shapes=None, option: str = "--rank") -> None:
    """The one rank range check: 1 <= rank <= the smallest side of any low-rank matrix; only
    rank >= 1 where the shapes are not known yet (matrix_shapes None: a config, a list of ranks).
    `option` is the flag the error's fix names."""
    if not _is_int(rank):
        raise SpikerollError(f"rank={_show(rank)} must be a whole number >= 1; try {option} 1")
    smallest = None
    if matrix_shapes is not None:
        smallest = min((min(shape) for shape in matrix_shapes), default=None)
        if smallest is None:
            raise SpikerollError("the model has no weight matrix for low-rank noise; give it a Linear or Conv layer, "
                                 "or use full-rank noise (--strategy openes)")
    if rank < 1 or (smallest is not None and rank > smallest):
        bound = ">= 1" if smallest is None else f"between 1 and {smallest} (the smallest side of any weight matrix)"
        raise SpikerollError(f"rank={rank} is out of range; it must be {bound}; try {option} 1")
