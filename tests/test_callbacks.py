"""Callbacks: the hooks a run calls, in order, and what they may change; TensorBoard's event file."""

import json

import pytest
import torch

from spikeroll.training.callbacks import Callback, TensorBoardCallback
from spikeroll.training.trainer import Trainer

from test_train import metrics, small_config, synthetic_data


class Recorder(Callback):
    """Records every hook call with the generation it saw."""

    def __init__(self):
        """No events yet."""
        self.events = []

    def on_run_start(self, trainer):
        """('start', the trainer's generation)."""
        self.events.append(("start", trainer.generation))

    def on_step_end(self, trainer, record):
        """('step', the record's generation, the trainer's, whether the record has an accuracy)."""
        self.events.append(("step", record["generation"], trainer.generation, "val_accuracy" in record))

    def on_generation_end(self, trainer, record):
        """('end', the record's generation, whether it was evaluated)."""
        self.events.append(("end", record["generation"], "val_accuracy" in record))

    def on_run_end(self, trainer, report):
        """('finish', the report's generation count)."""
        self.events.append(("finish", report["generations"]))


def test_hooks_are_called_in_order_with_the_generation(tmp_path):
    """Start, then step and end per generation (evaluated ones after the step), then finish."""
    recorder = Recorder()
    Trainer(small_config(generations=4, eval_every=2), tmp_path, synthetic_data(), callbacks=[recorder]).run(
        progress=False)
    expected = [("start", 0)]
    for g in range(4):  # the step's record has no accuracy yet; evaluation (every 2) comes after it
        expected += [("step", g, g + 1, False), ("end", g, (g + 1) % 2 == 0)]
    assert recorder.events == expected + [("finish", 4)]


class FreezeFirstLayer(Callback):
    """Puts the first layer's weights back after every step."""

    def on_run_start(self, trainer):
        """Keep the first layer's initial weights."""
        self.initial = trainer.net.params["layer0.weight"].clone()

    def on_step_end(self, trainer, record):
        """Undo the step on the first layer."""
        trainer.net.params["layer0.weight"].copy_(self.initial)


def test_a_callback_can_change_the_network_between_generations(tmp_path):
    """What on_step_end writes into the network is what the next generation trains from."""
    trainer = Trainer(small_config(generations=3), tmp_path, synthetic_data(), callbacks=[FreezeFirstLayer()])
    start = {name: p.clone() for name, p in trainer.net.params.items()}
    trainer.run(progress=False)
    assert torch.equal(trainer.net.params["layer0.weight"], start["layer0.weight"])
    assert not torch.equal(trainer.net.params["layer1.weight"], start["layer1.weight"])


def test_tensorboard_holds_every_generations_metrics(tmp_path):
    """The event file has each metric of metrics.jsonl at its generation, and nothing else."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(small_config(generations=4, eval_every=2), tmp_path, synthetic_data(),
            callbacks=[TensorBoardCallback()]).run(progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = metrics(tmp_path)
    for name in ("fitness_mean", "train_batch_accuracy", "lr", "val_accuracy"):
        want = [(r["generation"], r[name]) for r in logged if r.get(name) is not None]
        got = [(e.step, e.value) for e in events.Scalars(name)]
        assert [step for step, _ in got] == [step for step, _ in want]
        assert [value for _, value in got] == pytest.approx([value for _, value in want], rel=1e-6)
    assert len(events.Scalars("fitness_mean")) == 4 and len(events.Scalars("val_accuracy")) == 2


def test_tensorboard_on_resume_has_no_duplicate_steps(tmp_path):
    """Resumed from a checkpoint, the curves hold each generation once."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = synthetic_data()
    cfg = small_config(generations=6, checkpoint_every=2)
    Trainer(small_config(generations=3, checkpoint_every=2), tmp_path, data,
            callbacks=[TensorBoardCallback()]).run(progress=False)
    # the run above stopped at 3 with a checkpoint at 3; continue to 6 from it
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["generations"] == 3
    Trainer(cfg, tmp_path, data, resume=True, callbacks=[TensorBoardCallback()]).run(progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("fitness_mean")] == list(range(6))
