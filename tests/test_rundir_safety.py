"""No run is lost: --overwrite, a run stopped before its first checkpoint, torn metrics lines, kill -9
during a checkpoint or metrics write, a full disk, a file-size limit and a folder that turns
read-only mid-run. Real files, real processes, real mounts (skipped where mounting is impossible).

After each failure the run resumes to the same parameters, bit for bit, and the same metric lines
as an uninterrupted run."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from spikeroll.cli import main
from spikeroll.errors import SpikerollError
from spikeroll.training.callbacks import Callback
from spikeroll.training.rundir import load_checkpoint
from spikeroll.training.runfiles import RunFiles
from spikeroll.training.trainer import Trainer

from test_train import metrics, small_config, synthetic_data

TESTS = Path(__file__).resolve().parent
CFG = dict(generations=6, checkpoint_every=2, eval_every=3)  # checkpoints at generations 2, 4 and 6

# The child process of the kill and file-size tests: trains CFG into OUT; MODE picks how it stops.
CHILD = textwrap.dedent("""
    import io, json, os, resource, signal, sys, time
    sys.path.insert(0, {tests!r})
    import torch
    from spikeroll.errors import SpikerollError
    from spikeroll.training.callbacks import Callback
    from spikeroll.training.runfiles import RunFiles
    from spikeroll.training.trainer import Trainer
    from test_train import small_config, synthetic_data

    mode, out = sys.argv[1], sys.argv[2]
    callbacks = []
    if mode == "kill-checkpoint":  # stall halfway through writing generation 4's checkpoint
        real_save = torch.save
        def stalled_save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("generation") == 4:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                print("stalled", flush=True)
                time.sleep(120)
            return real_save(obj, f, *args, **kwargs)
        torch.save = stalled_save
    elif mode == "kill-metrics":  # stall halfway through writing generation 5's metrics line
        real_log = RunFiles.log
        def stalled_log(self, log, record):
            if record["generation"] == 5:
                line = (json.dumps(record) + "\\n").encode()
                log.write(line[: len(line) // 2])
                print("stalled", flush=True)
                time.sleep(120)
            return real_log(self, log, record)
        RunFiles.log = stalled_log
    elif mode == "file-size":  # after generation 2's checkpoint, no file may grow to its size
        class Limit(Callback):
            def on_generation_end(self, trainer, record):
                if trainer.generation == 2:
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG
                    size = os.path.getsize(os.path.join(out, "checkpoint.pt"))
                    resource.setrlimit(resource.RLIMIT_FSIZE, (size - 1, resource.RLIM_INFINITY))
        callbacks.append(Limit())
    try:
        Trainer(small_config(**{cfg!r}), out, synthetic_data(), callbacks=callbacks).run(progress=False)
    except SpikerollError as exc:
        print(f"error: {{exc}}", flush=True)
        sys.exit(2)
""").format(tests=str(TESTS), cfg=CFG)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """The three child runs, started at once (each pays for importing torch) and ended by the tests."""
    root = tmp_path_factory.mktemp("children")
    script = root / "child.py"
    script.write_text(CHILD)
    procs = {}
    for mode in ("kill-checkpoint", "kill-metrics", "file-size"):
        procs[mode] = (subprocess.Popen([sys.executable, str(script), mode, str(root / mode)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True), root / mode)
    yield procs
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.kill()  # by the PID of the process this fixture started
        proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Parameters and metric lines of the run trained without interruption."""
    out = tmp_path_factory.mktemp("full") / "run"
    Trainer(small_config(**CFG), out, synthetic_data()).run(progress=False)
    return load_checkpoint(out / "checkpoint.pt")["params"], metrics(out)


def assert_same_as_uninterrupted(out: Path, uninterrupted):
    params, lines = uninterrupted
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["generation"] == CFG["generations"]
    for a, b in zip(params, state["params"], strict=True):
        assert torch.equal(a, b)
    assert metrics(out) == lines
    assert [line["generation"] for line in metrics(out)] == list(range(CFG["generations"]))
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".replaced-*"))


def resume(out: Path) -> dict:
    return Trainer(small_config(**CFG), out, synthetic_data(), resume=True).run(progress=False)


@pytest.mark.parametrize("mode,saved", [("kill-checkpoint", 2), ("kill-metrics", 4)])
def test_kill_9_during_a_write_then_resume(children, uninterrupted, mode, saved, capfd):
    proc, out = children[mode]
    assert proc.stdout.readline().strip() == "stalled", proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)  # the PID of the child this test started
    assert proc.wait() == -signal.SIGKILL
    assert load_checkpoint(out / "checkpoint.pt")["generation"] == saved  # the last complete checkpoint
    if mode == "kill-checkpoint":
        assert len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1  # the half-written temp file
    else:
        assert not (out / "metrics.jsonl").read_bytes().endswith(b"\n")  # a torn last line
    resume(out)
    warned = capfd.readouterr().err
    assert ("skipped its torn last line" in warned) == (mode == "kill-metrics"), warned
    assert_same_as_uninterrupted(out, uninterrupted)


def test_file_size_limit_is_one_line_naming_the_intact_checkpoint(children, uninterrupted):
    proc, out = children["file-size"]
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    (line,) = stdout.strip().splitlines()
    assert line.startswith(f"error: cannot write {out}") and "(File too large)" in line, line
    assert "checkpoint of generation 2 is intact" in line and "--resume" in line, line
    assert load_checkpoint(out / "checkpoint.pt")["generation"] == 2
    resume(out)
    assert_same_as_uninterrupted(out, uninterrupted)


def mount(*args) -> bool:
    return subprocess.run(["mount", *map(str, args)], capture_output=True).returncode == 0


class AtGeneration(Callback):
    """Calls `action` once, right after generation `generation`'s checkpoint."""

    def __init__(self, generation, action):
        self.generation, self.action = generation, action

    def on_generation_end(self, trainer, record):
        if trainer.generation == self.generation:
            self.action()


def test_full_disk_is_one_line_naming_the_intact_checkpoint(tmp_path, uninterrupted):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", disk):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        out, filler = disk / "run", disk / "filler"

        def fill():  # takes every free block of the file system
            with open(filler, "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 4096)
                        handle.flush()
                except OSError:
                    pass

        with pytest.raises(SpikerollError) as caught:
            Trainer(small_config(**CFG), out, synthetic_data(), callbacks=[AtGeneration(2, fill)]).run(progress=False)
        message = str(caught.value)
        assert "\n" not in message and "(No space left on device)" in message, message
        assert "checkpoint of generation 2 is intact" in message and "--resume" in message
        assert load_checkpoint(out / "checkpoint.pt")["generation"] == 2
        filler.unlink()
        resume(out)
        assert_same_as_uninterrupted(out, uninterrupted)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_folder_turning_read_only_mid_run(tmp_path, uninterrupted):
    """Root ignores permission bits (chmod 0555 would not stop it), so the folder is made read-only
    the way an administrator would: a read-only bind mount of the run directory over itself. The
    open metrics.jsonl keeps its writable mount; every new write (the next checkpoint) meets EROFS."""
    out = tmp_path / "run"
    out.mkdir()
    mounted = []

    def make_read_only():
        if mount("--bind", out, out):
            mounted.append(out)
            if not mount("-o", "remount,bind,ro", out):
                mounted.clear()

    try:
        trainer = Trainer(small_config(**CFG), out, synthetic_data(), callbacks=[AtGeneration(2, make_read_only)])
        try:
            trainer.run(progress=False)
        except SpikerollError as exc:
            message = str(exc)
        else:
            message = None
        if not mounted:
            pytest.skip("cannot make a read-only bind mount here (needs root and mount rights)")
        assert message is not None and "\n" not in message, message
        assert f"cannot write {out / 'checkpoint.pt'} (Read-only file system)" in message, message
        assert "checkpoint of generation 2 is intact" in message and "--resume" in message
        # --resume while the folder is still read-only: one line, not a traceback
        with pytest.raises(SpikerollError, match=r"\(Read-only file system\); its checkpoint of generation 2 is"):
            resume(out)
    finally:
        for path in mounted:
            subprocess.run(["umount", str(path)], check=False)
    resume(out)
    assert_same_as_uninterrupted(out, uninterrupted)


def files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_overwrite_with_a_bad_rank_leaves_the_old_run_intact(tmp_path):
    out = tmp_path / "run"
    tiny = ["--hidden", "16", "--population", "8", "--batch-size", "32", "--generations", "2", "--time-bins", "3",
            "--quiet", "--out", str(out)]
    assert CliRunner().invoke(main, ["train", *tiny]).exit_code == 0
    before = files(out)
    result = CliRunner().invoke(main, ["train", *tiny, "--overwrite", "--rank", "999"])
    assert result.exit_code == 2 and result.output.startswith("error: rank=999 is out of range"), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


class FailAtStart(Callback):
    def on_run_start(self, trainer):
        raise RuntimeError("the new run fails before its first checkpoint")


def test_overwrite_puts_the_old_run_back_if_the_new_one_fails_to_start(tmp_path):
    data, out = synthetic_data(), tmp_path / "run"
    Trainer(small_config(generations=2), out, data).run(progress=False)
    before = files(out)
    with pytest.raises(RuntimeError, match="before its first checkpoint"):
        Trainer(small_config(generations=2, seed=1), out, data, overwrite=True, callbacks=[FailAtStart()]).run(
            progress=False)
    assert files(out) == before and not list(out.glob(".replaced-*"))
    # a new run that reaches its first checkpoint replaces the old one for good
    Trainer(small_config(generations=2, seed=1), out, data, overwrite=True).run(progress=False)
    assert files(out)["checkpoint.pt"] != before["checkpoint.pt"] and not list(out.glob(".replaced-*"))


def test_metrics_without_a_checkpoint_are_not_appended_to(tmp_path, monkeypatch, uninterrupted):
    data, out = synthetic_data(), tmp_path / "run"
    real_step = Trainer.step

    def dying_step(self):
        if self.generation == 1:
            raise KeyboardInterrupt  # killed before the first checkpoint (generation 2)
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config(**CFG), out, data).run(progress=False)
    monkeypatch.setattr(Trainer, "step", real_step)
    assert len(metrics(out)) == 1 and not (out / "checkpoint.pt").exists()
    with pytest.raises(SpikerollError, match="metrics.jsonl but no checkpoint.pt.*--overwrite.*--resume"):
        Trainer(small_config(**CFG), out, data)
    assert len(metrics(out)) == 1
    resume(out)  # starts again from generation 0; the old line goes
    assert_same_as_uninterrupted(out, uninterrupted)


def test_torn_metrics_line_is_skipped_on_resume_with_a_warning(tmp_path, monkeypatch, capfd, uninterrupted):
    data, out = synthetic_data(), tmp_path / "run"
    real_step = Trainer.step

    def dying_step(self):
        if self.generation == 5:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config(**CFG), out, data).run(progress=False)
    monkeypatch.setattr(Trainer, "step", real_step)
    with open(out / "metrics.jsonl", "ab") as log:
        log.write(b'{"generation": 5, "fitness_me')  # what a kill during the write leaves
    capfd.readouterr()
    resume(out)
    err = capfd.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("warning:")] == [
        f"warning: {out / 'metrics.jsonl'}: skipped its torn last line (the run was stopped while writing it)"]
    assert_same_as_uninterrupted(out, uninterrupted)


def test_metric_lines_are_identical_to_before(tmp_path):
    """The metrics file is written unbuffered and fsynced now: still one JSON object per line."""
    out = tmp_path / "run"
    Trainer(small_config(generations=2, eval_every=1), out, synthetic_data()).run(progress=False)
    raw = (out / "metrics.jsonl").read_text()
    assert raw.endswith("\n") and [json.loads(line)["generation"] for line in raw.splitlines()] == [0, 1]
    assert oct((out / "metrics.jsonl").stat().st_mode & 0o777) == oct((out / "report.json").stat().st_mode & 0o777)


def test_a_run_killed_while_replacing_another_keeps_it_aside(tmp_path, monkeypatch):
    data, out = synthetic_data(), tmp_path / "run"
    Trainer(small_config(generations=2), out, data).run(progress=False)
    before = files(out)
    real_step = Trainer.step

    def dying_step(self):
        if self.generation == 1:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", dying_step)
    monkeypatch.setattr(RunFiles, "put_back", lambda self: None)  # as after kill -9: nothing more runs
    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config(generations=2, seed=1), out, data, overwrite=True).run(progress=False)
    (aside,) = out.glob(".replaced-*")
    assert files(aside) == before  # the old run, whole, until the new one's first checkpoint
    with pytest.raises(SpikerollError, match=f"the run it was replacing is kept in {re.escape(str(aside))}"):
        Trainer(small_config(generations=2), out, data)
