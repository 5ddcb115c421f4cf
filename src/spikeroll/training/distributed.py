"""One training run across many processes and machines, on Ray (extra `distributed`).

`RayEvaluator` answers the evaluator protocol (population_fitness) with Ray actors. The driver (the
Trainer's process) owns θ and the optimiser; a generation is

    driver: θ -> object store (once)   units of `unit_pairs` pairs -> idle workers, dynamically
    worker: minibatch(g) from its own copy of the training split; unit fitness (2P floats) back
    driver: fitness of every member -> the same shaping and update as a single process

Why the results do not depend on the workers: a unit's fitness is a pure function of (θ, seed,
generation, unit). The noise is drawn from counters (spikeroll.noise), the minibatch from (seed, g),
and the unit size comes from the configuration (evaluators.auto_unit_pairs), never from the worker
count: the floats of the population forward depend on how many pairs are evaluated together (the
first layer's x·B is one GEMM over the unit's pairs), not on which process evaluates them. So a
unit re-run after a fault, on any worker, returns the same bits.

Faults: a worker that dies (process killed, node gone) loses only its unit in flight, which goes
back to the queue for the other workers; Ray restarts the actor (max_restarts=-1) where resources
allow. When no worker has been reachable for `worker_timeout` seconds, the run stops with an error
(the Trainer's last checkpoint stays intact; --resume continues it on any number of workers).

Data: each worker loads the training split itself (the frame cache on a shared filesystem) and
keeps it when its digest matches the driver's; otherwise it reads the copy the driver put into
the object store, which Ray moves to each node once. A per-generation checksum of the minibatch
comes back with every unit, so a worker that built a different minibatch stops the run.

Code: a worker runs spikeroll and, with `--model FILE.py:FACTORY`, that one file, nothing else. It
is built from the driver's own configuration (`cfg.to_dict()`, sent with the actor), never from a
config read from disk; the driver has already made the model path absolute (ModuleNet.from_config),
so every worker imports the file the driver was given and calls the same factory. A `--fitness
FILE.py:FN` file travels as bytes with the actor (`fitness_source`): the worker imports that copy,
so it runs exactly what the user named, with or without a shared filesystem.

Dispatch and work: `RayUnits` is the dispatcher (Ray start or join, actors, units to idle workers,
lost workers, the timeout); `RayEvaluator` says what a classification unit is (the shared
minibatch, fitness and accuracy, spike counts when the objective counts), and
spikeroll.control.remote what a control unit is (its members' own rollouts).

Trust boundary: Ray stays on this machine unless asked. The cluster that `--workers K` starts
(`start_local_ray`) has its node address on loopback, and Ray 2.60 then binds every server it
starts to 127.0.0.1: the GCS, the raylet (node manager and object manager), each worker's and the
driver's gRPC server, the runtime-env agent, and, on a full `ray[default]` install, the dashboard
agent (gRPC, HTTP and metrics export), the API server's and the autoscaler monitor's metrics ports.
No dashboard UI is started (the API server process of a minimal install listens on nothing);
ray.init itself turns usage statistics off for the clusters it starts. tests/test_ray_sockets.py
lists the listening sockets of every process of a run. Joining a cluster (`--ray-address`) is
asking: that cluster's addresses and authentication are its owner's, and spikeroll warns when the
driver joined it without Ray's token authentication (`token_auth_enabled`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import resource
import shutil
import socket
import tempfile
import time
import warnings
import zlib
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spikeroll.config import TrainConfig
from spikeroll.data.minibatch import minibatch
from spikeroll.data.splits import Split
from spikeroll.errors import SpikerollError
from spikeroll.es.evaluators import BaseEvaluator, LocalEvaluator, units
from spikeroll.es.objectives import load_fitness
from spikeroll.training.factories import load_data, local_evaluator, make_network

EXTRA = "pip install 'spikeroll[distributed]'"
STARTUP_SECONDS = 300  # for the first worker of a run; after that, cfg.worker_timeout applies
LOOPBACK = "127.0.0.1"  # the node address of a cluster this process starts
RAY_QUIET = {"logging_level": "ERROR", "log_to_driver": False}
log = logging.getLogger("spikeroll.training.distributed")


def import_ray():
    """The `ray` module, or a one-line SpikerollError naming the extra when Ray is not installed."""
    try:
        import ray  # optional dependency: the extra `distributed`
    except ImportError:
        raise SpikerollError(f"--workers/--ray-address need Ray, which is not installed; {EXTRA}") from None
    return ray


def start_local_ray(num_cpus: int) -> None:
    """Start a Ray instance on this machine, with `num_cpus` logical CPUs, that listens on loopback only.

    Every Ray server picks its bind address from the node's address: 127.0.0.1 binds 127.0.0.1
    (C++ gRPC servers: GCS, raylet, core workers; Python agents: runtime env, dashboard agent and
    metrics), any other address binds all interfaces. ray.init(_node_ip_address="127.0.0.1") alone
    is not enough: Ray replaces a loopback address with the machine's outward one (services.
    resolve_ip_for_localhost) except where `ray_constants.ENABLE_RAY_CLUSTER` is off, which the
    environment variable RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 sets only when read at Ray's import.
    So the flag is turned off around ray.init only (Ray has no public switch for this); the node
    address is then checked through ray.nodes(), and a cluster that is not on loopback is shut
    down with an error rather than used. include_dashboard=False: no dashboard UI."""
    ray = import_ray()
    with _loopback_node_address():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, dashboard_host=LOOPBACK,
                 _node_ip_address=LOOPBACK, **RAY_QUIET)
    addresses = sorted({node["NodeManagerAddress"] for node in ray.nodes()})
    if addresses != [LOOPBACK]:
        ray.shutdown()
        raise SpikerollError(f"the local Ray instance came up on {', '.join(addresses)} instead of {LOOPBACK} only, "
                             "and was stopped; this Ray version ignores spikeroll's loopback setting: start a "
                             "cluster yourself (`ray start --head`, docs/distributed.md) and pass --ray-address")


@contextmanager
def _loopback_node_address():
    """Ray's 'clusters enabled' flag off while ray.init starts a node, so that the node's address
    stays the loopback one it was given (see start_local_ray)."""
    from ray._private import ray_constants  # optional dependency (Ray); private: no public switch exists

    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled


def join_ray(address: str) -> None:
    """Connect this process to the running Ray cluster at `address`, warning (one line) when it
    was joined without token authentication; a cluster that cannot be joined is a one-line error."""
    ray = import_ray()
    check_listening(address)
    try:
        ray.init(address=address, **RAY_QUIET)
    except Exception as exc:  # noqa: BLE001 - Ray raises several kinds; the advice is the same
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpikerollError(
            f"cannot join the Ray cluster at {address!r} ({reason}); start one with "
            "`ray start --head` (docs/distributed.md) or fix --ray-address") from None
    if not token_auth_enabled():
        log.warning("spikeroll: joined the Ray cluster at %s without token authentication (RAY_AUTH_MODE is not "
                    "'token'): anyone who can reach its ports can run code on it; see docs/distributed.md", address)


def check_listening(address: str, timeout: float = 5.0) -> None:
    """A one-line error when nothing accepts a TCP connection at a HOST:PORT address (ray:// too).

    Why: ray.init keeps retrying an address where no cluster listens for minutes (its GCS connect
    and cluster-id timeouts, then more), so a typo would look like a hang. "auto" and other
    addresses without a port are left to Ray, which fails fast on them."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]") or LOOPBACK, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SpikerollError(
            f"cannot join the Ray cluster at {address!r} (nothing answers at {host or LOOPBACK}:{port}: {reason}); "
            "start one with `ray start --head` (docs/distributed.md) or fix --ray-address") from None


def token_auth_enabled() -> bool:
    """Whether this process uses Ray's token authentication: RAY_AUTH_MODE=token, set by the user or
    by ray.init itself (a new local cluster, or a token found for address="auto").

    A driver without a token can only join a cluster that does not ask for one, so after a
    successful ray.init, False means the cluster accepts anyone who reaches it. (True cannot tell
    whether the cluster checks the token the driver sends.) Ray's own C++ setting reads the same
    variable (ray._raylet.get_authentication_mode, not a public API); Rays before token
    authentication have neither and always read as False, which is what they are."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


def split_digest(frames: torch.Tensor, labels: torch.Tensor) -> str:
    """Identity of a training split: a worker keeps its own copy only when this matches."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(repr((tuple(frames.shape), str(frames.dtype))).encode())
    h.update(frames.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def batch_checksum(frames: torch.Tensor, labels: torch.Tensor) -> int:
    """A cheap checksum of a minibatch (CRC-32), compared between the driver and every unit."""
    crc = zlib.crc32(frames.detach().cpu().contiguous().numpy().tobytes())
    return zlib.crc32(labels.detach().cpu().contiguous().numpy().tobytes(), crc)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process in bytes (Linux: getrusage reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class WorkerInfo:
    """What every Ray worker actor reports (`info`); a subclass sets `data_source` when it has data."""

    data_source = None

    def info(self) -> dict:
        """This worker's pid, Ray node id, data path (filesystem or object store), threads and peak memory."""
        import ray  # optional dependency (extra `distributed`); always there in a Ray worker

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "data": self.data_source,
                "threads": torch.get_num_threads(), "peak_rss_bytes": peak_rss_bytes()}


class Worker(WorkerInfo):
    """A Ray actor: one network, one local evaluator and the training split; evaluates units."""

    def __init__(self, cfg_dict: dict, in_features: int, classes: int, threads: int, device: str,
                 fitness: tuple | None = None):
        torch.set_num_threads(threads)
        self.cfg = cfg = TrainConfig.from_dict(cfg_dict)
        self.device = torch.device(device)
        self.net = make_network(cfg, in_features, classes, self.device)
        # the built-in network or a --model module; a --fitness function from the bytes the driver sent
        self.evaluator = local_evaluator(cfg, self.net, import_fitness_source(fitness) if fitness else None)
        self.train = None
        self.theta_key, self.batch = None, (None,)

    def prepare(self, digest: str, store: list) -> dict:
        """Load the training split once per process (the driver calls this after every (re)start;
        `store` is [ObjectRef] of the driver's copy, fetched only when needed) and report info()."""
        if self.train is None:
            self.train, self.data_source = self._training_split(digest, store)
        return self.info()

    def _training_split(self, digest: str, store: list):
        """The frame cache when this process can read the very same split, else the object store."""
        if self.cfg.worker_data == "auto":
            try:
                train = load_data(self.cfg, progress=False).train
                if split_digest(train.frames, train.labels) == digest:
                    return train, "filesystem"
            except (SpikerollError, OSError, ValueError):
                pass  # no dataset here (no shared filesystem): use the driver's copy
        import ray  # optional dependency (extra `distributed`); always there in a Ray worker

        frames, labels = ray.get(store[0])
        with warnings.catch_warnings():  # object-store arrays are read-only and shared: never written
            warnings.simplefilter("ignore", UserWarning)
            return Split(torch.from_numpy(frames), torch.from_numpy(labels)), "object store"

    @torch.no_grad()
    def evaluate(self, generation: int, sigma: float, theta: list, start: int, stop: int):
        """Fitness and accuracy (numpy, 2·(stop − start) members) of pairs start..stop, the
        minibatch checksum, and the unit's counts when the objective counts (else None).
        θ arrives once per generation: `theta` is [ObjectRef], fetched once."""
        import ray  # optional dependency (extra `distributed`); always there in a Ray worker

        if self.theta_key != theta[0].hex():
            values = ray.get(theta[0])
            self.net.load_parameters([torch.from_numpy(np.array(v)) for v in values])
            self.theta_key = theta[0].hex()
        if self.batch[0] != (generation, self.theta_key):
            frames, labels = minibatch(self.train, self.cfg, generation)
            self.batch = ((generation, self.theta_key), frames.to(self.device), labels.to(self.device),
                          batch_checksum(frames, labels), self.evaluator.shared_input(frames.to(self.device)))
        _, frames, labels, checksum, shared = self.batch
        # one process computes the first layer's shared x·Wᵀ once for all its units; a worker does the
        # same for the units it gets, instead of once per unit (0.5 ms per pair at hidden 128)
        found = [] if self.evaluator.count else None
        extra = {} if found is None else {"counts": found}
        fitness, acc = self.evaluator.unit_fitness(generation, sigma, frames, labels, range(start, stop), shared,
                                                   **extra)
        self.evaluator.strategy.forget()
        return fitness.numpy(), acc.numpy(), checksum, (found[0] if found else None)


class RayUnits(BaseEvaluator):
    """Ray actors that evaluate a generation's work units: the one dispatcher of every distributed
    evaluation (classification here, control rollouts in spikeroll.control.remote).

    It starts (or joins) Ray, starts `count` actors, sends units to idle actors, puts a lost
    actor's unit back in the queue, pings lost actors until they are back, and stops the run once
    none has been reachable for `worker_timeout` seconds. A subclass says what runs: the actor
    class and its arguments (`_actor`), what every (re)started actor is prepared with
    (`_prepare_args`), the generation's task (`_Generation`: its scalars and object-store refs)
    and what to do with a unit's result (`_accept`). `settings` has workers, threads_per_worker,
    ray_address and worker_timeout (a TrainConfig or a ControlConfig)."""

    gpus = 0.0  # Ray GPUs per actor

    def __init__(self, settings):
        import_ray()
        self.cfg = settings
        self.actors: list = []
        self.workers: dict[int, dict] = {}  # actor index -> info (pid, node, data path, peak memory)
        self.owns_ray = False
        self.stats = {"units_rerun": 0, "workers_lost": 0}
        self.last = {}  # the last generation's bytes and seconds, see _run
        self._pings: dict = {}  # ObjectRef of an info() call -> actor index, for workers (re)starting
        self._retry_at: dict[int, float] = {}  # down actors to ping again at this time
        self._busy: dict[int, range] = {}
        self._last_error = "none"
        self._prepare: tuple = ()

    # what a subclass says -----------------------------------------------------------------------
    def _actor(self, threads: int) -> tuple[type, tuple]:
        """The actor class and its constructor arguments, for actors of `threads` threads."""
        raise NotImplementedError

    def _prepare_args(self) -> tuple:
        """The arguments of every (re)started actor's prepare() (after ray.init; e.g. data refs)."""
        return ()

    def _accept(self, run: _Generation, index: int, unit: range, result) -> int:
        """Store a unit's result (from actor `index`); returns the bytes it brought back."""
        raise NotImplementedError

    # workers ----------------------------------------------------------------------------------
    def _start(self) -> None:
        ray = import_ray()
        cfg = self.cfg
        if not ray.is_initialized():  # else: the caller's own Ray instance, as the caller set it up
            if cfg.ray_address:
                join_ray(cfg.ray_address)
            else:
                workers = cfg.workers or 1
                threads = cfg.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
                start_local_ray(workers * threads)
            self.owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = cfg.threads_per_worker or max(1, cpus // cfg.workers if cfg.workers else 1)
        count = cfg.workers or max(1, cpus // threads)
        self.threads, self.count = threads, count
        self._prepare = self._prepare_args()  # what every (re)started worker is prepared with
        cls, args = self._actor(threads)
        actor = ray.remote(cls).options(num_cpus=threads, num_gpus=self.gpus, max_restarts=-1, max_task_retries=0,
                                        scheduling_strategy="SPREAD")
        self.actors = [actor.remote(*args) for _ in range(count)]
        self._pings = {a.prepare.remote(*self._prepare): i for i, a in enumerate(self.actors)}
        # the first worker may take a while (a cluster scaling up); then wait a little for the others,
        # so that a run uses all of them from its first generation (a late one joins when ready)
        ready, _ = ray.wait(list(self._pings), num_returns=1, timeout=STARTUP_SECONDS)
        if ready:
            ready, _ = ray.wait(list(self._pings), num_returns=len(self._pings), timeout=max(cfg.worker_timeout, 30))
        for ref in ready:
            index = self._pings.pop(ref)
            try:
                self.workers[index] = ray.get(ref)
            except ray.exceptions.RayError as exc:  # asked again from the first generation on
                self._last_error = describe_error(exc)
                self._retry_at[index] = time.monotonic() + 1.0
        if not self.workers:
            self.close()
            raise SpikerollError(
                f"no Ray worker started within {STARTUP_SECONDS} s (last error: {self._last_error}); check that the "
                f"cluster has {threads} free CPU(s) per worker (`ray status`) and spikeroll installed on every node")

    def close(self) -> None:
        """Stop the workers (and the local Ray instance this evaluator started)."""
        if not self.actors and not self.owns_ray:
            return
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors, self._pings, self._busy, self._retry_at = [], {}, {}, {}
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False

    def busy_pids(self) -> list[int]:
        """PIDs of the workers evaluating a unit right now (for fault-injection tests)."""
        return [self.workers[i]["pid"] for i in self._busy if i in self.workers]

    def worker_info(self) -> list[dict]:
        """Each live worker's pid, node, data path and peak resident memory (bytes)."""
        ray = import_ray()
        return ray.get([self.actors[i].info.remote() for i in sorted(self.workers)])

    def _lost(self, index: int, exc: Exception) -> None:
        self.stats["workers_lost"] += 1
        self._last_error = describe_error(exc)
        self.workers.pop(index, None)
        self._retry_at[index] = time.monotonic()
        log.warning("spikeroll: Ray worker %d lost (%s); its unit goes to another worker", index, self._last_error)

    # one generation ---------------------------------------------------------------------------
    def _run(self, generation: int, scalars: tuple, payload, todo: list[range], **results) -> _Generation:
        """Evaluate the units `todo` of one generation on the workers: each task is
        evaluate(generation, *scalars, [payload ref], start, stop), `payload` put into the object
        store once; `results` are the generation's result buffers (for `_accept`). A lost worker's
        unit goes back to the queue (see the module docstring)."""
        ray = import_ray()
        if not self.actors:
            self._start()
        start_time = time.perf_counter()
        ref = [ray.put(payload)]
        run = _Generation(generation, scalars, ref, todo=deque(todo),
                          idle=deque(i for i in range(len(self.actors)) if i in self.workers), results=results)
        put_seconds = time.perf_counter() - start_time
        while run.todo or run.running:
            now = time.monotonic()  # one clock reading per round, for the pings and the timeout alike
            self._ping_lost_workers(now)
            self._dispatch(run)
            self._check_reachable(run, now)
            ready, _ = ray.wait(list(run.running) + list(self._pings), num_returns=1, timeout=0.5)
            for done in ready:
                if done in self._pings:
                    self._worker_answered(done, run)
                else:
                    self._unit_answered(done, run)
        payload_bytes = payload_nbytes(payload)
        self.last = {"generation": generation, "theta_bytes": payload_bytes, "nodes": len(run.nodes),
                     "task_bytes": run.sent, "result_bytes": run.received,
                     "bytes": payload_bytes * len(run.nodes) + run.sent + run.received,
                     "put_seconds": put_seconds, "seconds": time.perf_counter() - start_time}
        return run

    def _ping_lost_workers(self, now: float) -> None:
        """Ask lost workers whose retry time has come (by `now`) whether they are back."""
        for i, when in list(self._retry_at.items()):
            if now >= when:
                del self._retry_at[i]
                self._pings[self.actors[i].prepare.remote(*self._prepare)] = i

    def _dispatch(self, run: _Generation) -> None:
        """Send queued units to idle workers."""
        while run.todo and run.idle:
            i, unit = run.idle.popleft(), run.todo.popleft()
            ref = self.actors[i].evaluate.remote(run.generation, *run.scalars, run.payload, unit.start, unit.stop)
            run.running[ref], self._busy[i] = (i, unit), unit
            task = (run.generation, *run.scalars, unit.start, unit.stop)
            run.sent += len(pickle.dumps(task)) + len(run.payload[0].binary())

    def _check_reachable(self, run: _Generation, now: float) -> None:
        """Stop the run once no worker has had a unit for `worker_timeout` seconds (as of `now`)."""
        if run.running:
            run.down_since = None
        elif run.down_since is None:
            run.down_since = now
        elif now - run.down_since > self.cfg.worker_timeout:
            raise SpikerollError(
                f"no Ray worker has been reachable for {self.cfg.worker_timeout:g} s (last error: "
                f"{self._last_error}); the run stopped at generation {run.generation} and its last checkpoint is "
                "intact: restart the workers (or drop --workers) and continue with --resume")

    def _worker_answered(self, ref, run: _Generation) -> None:
        """A lost worker answered its ping: back to work, or asked again later if still down."""
        from ray.exceptions import RayError  # optional dependency (Ray): imported where a run uses it

        i = self._pings.pop(ref)
        try:
            self.workers[i] = import_ray().get(ref)
            run.idle.append(i)
        except RayError as exc:  # still down (or failed to start): ask again later
            self._last_error = describe_error(exc)
            self._retry_at[i] = time.monotonic() + 1.0

    def _unit_answered(self, ref, run: _Generation) -> None:
        """A unit came back: `_accept` its result, or requeue it when its worker was lost."""
        from ray.exceptions import RayTaskError  # optional dependency (Ray): imported where a run uses it

        i, unit = run.running.pop(ref)
        del self._busy[i]
        try:
            result = import_ray().get(ref)
        except lost_worker_errors() as exc:  # the worker died or became unreachable mid-unit
            run.todo.appendleft(unit)
            self.stats["units_rerun"] += 1
            self._lost(i, exc)
            return
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, SpikerollError) else repr(exc.cause)
            raise SpikerollError(f"a Ray worker failed on pairs {unit.start}-{unit.stop - 1}: {cause}") from None
        run.received += self._accept(run, i, unit, result)
        run.nodes.add(self.workers[i]["node"] if i in self.workers else i)
        run.idle.append(i)


class RayEvaluator(RayUnits):
    """The LocalEvaluator's work units, evaluated by Ray actors (see the module docstring).

    `local` is the LocalEvaluator of the driver's network: it fixes the unit size, so the update's
    noise chunks match a single-process run. Workers start at the first generation."""

    def __init__(self, local: LocalEvaluator, cfg: TrainConfig, data):
        super().__init__(cfg)
        if data is None:
            raise SpikerollError("a distributed run needs its data on the workers; pass data (a Splits) to "
                                 "build_estimator, as the Trainer does")
        self.local, self.train = local, data.train
        self.net, self.strategy = local.net, local.strategy
        self.gpus = cfg.gpus_per_worker
        self.fitness = fitness_source(cfg.fitness)  # read now, just after the driver imported the same file
        self._metrics: dict = {}

    def unit_pairs(self, batch: int) -> int:
        """The local evaluator's unit size, so that units and noise chunks match one process."""
        return self.local.unit_pairs(batch)

    def metrics(self) -> dict:
        """The last generation's population means of the spike counts, as LocalEvaluator.metrics
        gives them (the units' counts put together in unit order); {} when nothing was counted."""
        return dict(self._metrics)

    def _actor(self, threads: int) -> tuple[type, tuple]:
        device = "cuda" if self.cfg.gpus_per_worker > 0 else "cpu"
        return Worker, (self.cfg.to_dict(), self.net.sizes[0], self.net.sizes[-1], threads, device, self.fitness)

    def _prepare_args(self) -> tuple:
        digest = split_digest(self.train.frames, self.train.labels)
        store = [import_ray().put((self.train.frames.contiguous().numpy(), self.train.labels.contiguous().numpy()))]
        return digest, store

    @torch.no_grad()
    def population_fitness(self, generation: int, sigma: float, frames: torch.Tensor, labels: torch.Tensor):
        """Fitness and accuracy of every member (N,) on the CPU, the work units spread over the
        workers; a lost worker's unit goes back to the queue (see the module docstring)."""
        population = self.strategy.population
        values = [p.detach().cpu().numpy() for p in self.net.params.values()]
        todo = units(self.strategy.pairs, self.unit_pairs(len(labels)))
        run = self._run(generation, (sigma,), values, todo, expected=batch_checksum(frames, labels),
                        fitness=torch.empty(population), accuracy=torch.empty(population), counts={})
        counts = run.results["counts"]
        parts = [counts[u.start] for u in todo] if counts else []
        self._metrics = type(parts[0]).cat(parts).summary() if parts else {}  # SpikeCounts or ModuleCounts
        return run.results["fitness"], run.results["accuracy"]

    def _accept(self, run: _Generation, index: int, unit: range, result) -> int:
        f, a, checksum, counts = result
        if checksum != run.results["expected"]:
            raise SpikerollError(
                f"Ray worker {index} built a different minibatch in generation {run.generation} (its training "
                "data differs from the driver's); run with --worker-data store")
        run.results["fitness"].numpy()[2 * unit.start:2 * unit.stop] = f
        run.results["accuracy"].numpy()[2 * unit.start:2 * unit.stop] = a
        if counts is not None:
            run.results["counts"][unit.start] = counts
        return f.nbytes + a.nbytes + 8 + (0 if counts is None else counts.nbytes())


@dataclass
class _Generation:
    """The bookkeeping of one generation on the workers: units to send, units in flight, results."""

    generation: int
    scalars: tuple  # sent with every task, after the generation
    payload: list  # [ObjectRef] of what every task of the generation shares (θ), put once
    todo: deque
    idle: deque
    results: dict  # the subclass's buffers, filled unit by unit
    running: dict = field(default_factory=dict)  # ObjectRef -> (worker index, unit)
    nodes: set = field(default_factory=set)
    sent: int = 0
    received: int = 0
    down_since: float | None = None


def fitness_source(spec: str | None) -> tuple[str, bytes, str] | None:
    """--fitness FILE.py:FN as (the file's name, its bytes, FN): they travel to the workers with the
    actor, so a worker imports the very file the user named, and needs no shared filesystem."""
    if not spec:
        return None
    path, _, name = spec.rpartition(":")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SpikerollError(f"--fitness file {path!r} cannot be read ({exc.strerror}); give FILE.py:FN") from None
    return Path(path).name, data, name


def import_fitness_source(source: tuple[str, bytes, str]):
    """On a worker: the function FN of the file the driver sent (`fitness_source`), written into a
    private folder under its own name (so its errors name it), imported from there, and removed
    (the module stays loaded; error lines come from its code objects)."""
    name, data, function = source
    folder = Path(tempfile.mkdtemp(prefix="spikeroll-fitness-"))
    try:
        (folder / name).write_bytes(data)
        return load_fitness(f"{folder / name}:{function}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def payload_nbytes(payload) -> int:
    """Bytes of the arrays in a generation's payload (numpy arrays, or lists/tuples/dicts of them)."""
    if isinstance(payload, np.ndarray):
        return payload.nbytes
    if isinstance(payload, torch.Tensor):
        return payload.numel() * payload.element_size()
    if isinstance(payload, dict):
        return sum(payload_nbytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(payload_nbytes(v) for v in payload)
    return 0


def describe_error(exc: Exception) -> str:
    """A Ray error as one line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def lost_worker_errors() -> tuple[type[Exception], ...]:
    """Ray's errors for a worker process or its node gone or unreachable: the unit goes back to the queue."""
    from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError  # optional (Ray)

    return (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError)
