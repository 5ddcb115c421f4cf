"""Distributed runs on a real Ray cluster (no mocks): the same bits as one process, whatever the
number of workers, with workers killed by PID, every worker gone, or the driver killed and resumed.

The reference is always the single-process run of the same settings (LocalEvaluator): a distributed
run must reproduce its final parameters and every metrics.jsonl value bit for bit. The two-node
cluster (network namespaces, a node removed mid-run) is in tests/test_distributed_cluster.py.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from spikeroll.api import load_data, train_run  # noqa: E402
from spikeroll.config import TrainConfig  # noqa: E402
from spikeroll.data.minibatch import minibatch  # noqa: E402
from spikeroll.errors import SpikerollError  # noqa: E402
from spikeroll.training.callbacks import Callback  # noqa: E402
from spikeroll.training.distributed import start_local_ray  # noqa: E402
from spikeroll.training.estimator import build_estimator  # noqa: E402
from spikeroll.training.factories import make_network  # noqa: E402
from spikeroll.training.rundir import load_checkpoint  # noqa: E402

# a short digits run: 32 pairs in units of 4 pairs (8 units, more than any worker count here),
# augmented minibatches (the workers must rebuild them exactly), a checkpoint every 2 generations
SETTINGS = dict(dataset="digits", hidden=[32], population=64, chunk_pairs=4, batch_size=32, generations=6,
                eval_every=3, checkpoint_every=2, augment_shift=1, seed=3, device="cpu")


def config(**kw):
    """The shared SETTINGS with `kw` replacing some."""
    return TrainConfig(**{**SETTINGS, **kw})


def run_metrics(run_dir):
    """A run's metrics.jsonl records, without their wall-clock seconds (the population's spike
    counts, synops, synops_hidden and rate_layer{i}, of a counting objective are compared: the
    workers send their units' counts back)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def final_params(run_dir):
    """The parameters of a run's last checkpoint."""
    return load_checkpoint(Path(run_dir) / "checkpoint.pt")["params"]


def assert_identical(run_dir, reference_dir):
    """Every metric and every final parameter of the run equal the reference's, bit for bit."""
    assert run_metrics(run_dir) == run_metrics(reference_dir)  # every fitness, accuracy, σ and lr
    for got, want in zip(final_params(run_dir), final_params(reference_dir), strict=True):
        assert torch.equal(got, want)


@pytest.fixture(scope="module")
def digits():
    """The digits splits of SETTINGS, loaded once for the module."""
    return load_data(config(), progress=False)


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    """The single-process run that every distributed run must reproduce."""
    out = tmp_path_factory.mktemp("single")
    train_run(config(), out, data=digits, progress=False)
    return out


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (3 logical CPUs), on loopback as `--workers` starts it, shared by the
    tests here; each run starts and stops its own worker actors on it."""
    start_local_ray(3)
    yield
    ray.shutdown()


class Grab(Callback):
    """Keeps the Trainer, so a test can reach its evaluator."""

    def on_run_start(self, trainer):
        """Keep the trainer."""
        self.trainer = trainer

    @property
    def evaluator(self):
        """The run's evaluator (a RayEvaluator in a distributed run)."""
        return self.trainer.estimator.evaluator


def test_population_fitness_matches_local_evaluator(digits, local_ray):
    """Every member's fitness and accuracy, not only their means, equal the local evaluator's."""
    cfg = config(workers=2, threads_per_worker=1)
    net = make_network(cfg, 2312, digits.classes, "cpu")
    local = build_estimator(config(), net).evaluator
    remote = build_estimator(cfg, net, digits).evaluator
    try:
        for generation in (0, 1):
            frames, labels = minibatch(digits.train, cfg, generation)
            want = local.population_fitness(generation, 0.05, frames, labels)
            got = remote.population_fitness(generation, 0.05, frames, labels)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        # bytes per generation: θ once per node, a few scalars per unit, 2 floats per member back
        theta_bytes = sum(p.numel() * 4 for p in net.params.values())
        assert remote.last["theta_bytes"] == theta_bytes and remote.last["nodes"] == 1
        assert remote.last["result_bytes"] == 8 * cfg.population + 8 * 8  # 8 units, one checksum each
        assert remote.last["bytes"] < theta_bytes + 200 * 8 + 8 * cfg.population + 64
    finally:
        remote.close()


@pytest.mark.parametrize("workers,data_path", [(1, "auto"), (2, "store"), (3, "auto")])
def test_workers_reproduce_single_process(digits, reference, local_ray, tmp_path, workers, data_path):
    """1, 2 or 3 workers, reading their own frame cache or the object store: the single-process bits."""
    grab = Grab()
    train_run(config(workers=workers, threads_per_worker=1, worker_data=data_path), tmp_path, data=digits,
              progress=False, callbacks=[grab])
    assert_identical(tmp_path, reference)
    sources = {info["data"] for info in grab.evaluator.workers.values()}
    # the workers read their own frame cache (the same machine is a shared filesystem) unless told
    # to use the object store
    assert sources == {"object store" if data_path == "store" else "filesystem"}
    assert len(grab.evaluator.workers) == workers


def test_synops_objective_on_workers_equals_the_local_run(digits, local_ray, tmp_path):
    """--objective synops on 2 workers: the units' spike counts come back, so every member's fitness,
    the population's count metrics and the final parameters are the single-process run's."""
    settings = dict(objective="synops", synops_weight=2.0, generations=3, eval_every=3, checkpoint_every=3)
    train_run(config(**settings), tmp_path / "local", data=digits, progress=False)
    train_run(config(workers=2, threads_per_worker=1, **settings), tmp_path / "ray", data=digits, progress=False)
    assert_identical(tmp_path / "ray", tmp_path / "local")
    assert all(r["synops"] > r["synops_hidden"] > 0 for r in run_metrics(tmp_path / "ray"))  # counted, and compared


def test_fitness_file_on_workers_equals_the_local_run(digits, local_ray, tmp_path):
    """--fitness FILE.py:FN on 2 workers: the file's bytes travel with the actor (no shared path is
    read: the file is renamed away before the workers start), and a per-member function gives the
    single-process bits."""
    source = tmp_path / "frugal.py"
    source.write_text("def fitness(logits, labels, counts):\n"
                      "    hit = (logits.argmax(-1) == labels).float().mean(1)\n"
                      "    return hit - 1e-4 * counts['synops_hidden'].float()\n")
    settings = dict(fitness=f"{source}:fitness", generations=3, eval_every=3, checkpoint_every=3)
    train_run(config(**settings), tmp_path / "local", data=digits, progress=False)

    class Hide(Callback):
        """Moves the file away once the driver has read it (before the first generation starts the workers)."""

        def on_run_start(self, trainer):
            """Rename the fitness file."""
            source.rename(tmp_path / "moved.py")

    train_run(config(workers=2, threads_per_worker=1, **settings), tmp_path / "ray", data=digits, progress=False,
              callbacks=[Hide()])
    assert_identical(tmp_path / "ray", tmp_path / "local")


class KillBusyWorker(Callback):
    """From generation `at`, SIGKILLs a worker while it evaluates a unit (by the PID it reported)."""

    def __init__(self, at):
        self.at, self.killed = at, []

    def on_run_start(self, trainer):
        """Keep the trainer and start watching for a busy worker."""
        self.trainer = trainer
        threading.Thread(target=self.watch, daemon=True).start()

    def watch(self):
        """Kill the first busy worker seen from generation `at` on (one kill per run)."""
        evaluator = self.trainer.estimator.evaluator
        while not self.killed and self.trainer.generation < self.trainer.cfg.generations:
            busy = evaluator.busy_pids() if self.trainer.generation >= self.at else []
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                self.killed.append(busy[0])
            time.sleep(0.002)


def test_worker_killed_mid_generation(digits, reference, local_ray, tmp_path):
    """A worker SIGKILLed while busy: its unit is re-run elsewhere and the bits do not change."""
    killer = KillBusyWorker(at=2)
    grab = Grab()
    train_run(config(workers=2, threads_per_worker=1), tmp_path, data=digits, progress=False,
              callbacks=[grab, killer])
    assert killer.killed, "no worker was busy to be killed"
    assert grab.evaluator.stats["units_rerun"] >= 1  # its unit in flight was evaluated again elsewhere
    assert_identical(tmp_path, reference)


class RemoveAllWorkers(Callback):
    """After generation `at`, kills every worker for good (Ray will not restart them)."""

    def __init__(self, at):
        self.at = at

    def on_generation_end(self, trainer, record):
        """At generation `at`, kill every worker actor without restart."""
        if trainer.generation == self.at:
            for actor in trainer.estimator.evaluator.actors:
                ray.kill(actor, no_restart=True)


def test_all_workers_gone_stops_with_error_then_resumes_on_other_worker_count(digits, reference, local_ray, tmp_path):
    """Every worker gone: a one-line error after --worker-timeout, the last checkpoint intact;
    --resume on 3 workers then gives the single-process bits."""
    with pytest.raises(SpikerollError, match="no Ray worker has been reachable for 2 s.*--resume") as error:
        train_run(config(workers=2, threads_per_worker=1, worker_timeout=2), tmp_path, data=digits,
                  progress=False, callbacks=[RemoveAllWorkers(at=3)])
    assert "\n" not in str(error.value)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["generation"] == 2  # readable, the last one written
    train_run(config(workers=3, threads_per_worker=1), tmp_path, data=digits, progress=False, resume=True)
    assert_identical(tmp_path, reference)


def test_without_ray_workers_get_a_one_line_error_naming_the_extra(tmp_path):
    """A fresh interpreter where `import ray` fails, as on an install without the extra."""
    script = ("import sys; sys.modules['ray'] = None\n"
              "from spikeroll.cli import main\n"
              "main(['train', '--workers', '2', '--generations', '1', '--hidden', '8', '--quiet',\n"
              "      '--out', sys.argv[1]])")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --workers/--ray-address need Ray, which is not installed; pip install 'spikeroll[distributed]'")


def descendants(pid):
    """PIDs of every process below `pid` (read from /proc), so a test ends only what it started."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process):
    """SIGKILL a process the test started and every process below it, by PID."""
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def cli(*args):
    """The command line of `python -m spikeroll.cli ARGS` in this interpreter."""
    return [sys.executable, "-m", "spikeroll.cli", *args]


def cli_args(cfg_overrides, out):
    """`train` arguments for SETTINGS with `cfg_overrides` (workers), writing to `out`."""
    cfg = config(**cfg_overrides)
    return ["train", "--hidden", "32", "--population", "64", "--chunk-pairs", "4", "--batch-size", "32",
            "--generations", "6", "--eval-every", "3", "--checkpoint-every", "2", "--augment-shift", "1",
            "--seed", "3", "--device", "cpu", "--workers", str(cfg.workers), "--threads-per-worker", "1",
            "--quiet", "--out", str(out)]


@pytest.mark.slow
def test_driver_killed_then_resumed_on_another_worker_count(reference, tmp_path):
    """`spikeroll train --workers 2` SIGKILLed (with its local Ray instance) after a checkpoint;
    `--resume --workers 1` finishes it with the single-process run's bits."""
    out = tmp_path / "run"
    driver = subprocess.Popen(cli(*cli_args({"workers": 2}, out)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists() or load_checkpoint(out / "checkpoint.pt")["generation"] < 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before a checkpoint"
            time.sleep(0.05)
    finally:
        kill_tree(driver)
    assert load_checkpoint(out / "checkpoint.pt")["generation"] in (2, 4)
    resumed = subprocess.run(cli(*cli_args({"workers": 1}, out), "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_identical(out, reference)
