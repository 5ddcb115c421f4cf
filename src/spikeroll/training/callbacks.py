"""Per-generation hooks into `Trainer.run`: how compare, bench, the probes and user code observe or
adjust a run without patching the Trainer.

Subclass `Callback`, override the hooks you need and pass instances as `Trainer(..., callbacks=[...])`
(or `train_run(..., callbacks=[...])`). `record` is the generation's metrics dict, the line that
goes to metrics.jsonl.
"""

from __future__ import annotations

from pathlib import Path

from spikeroll.errors import SpikerollError


class Callback:
    """Hooks that do nothing: override the ones you need (see the module docstring)."""

    def on_run_start(self, trainer) -> None:
        """Before the first generation of this call to `run` (also after a resume)."""

    def on_step_end(self, trainer, record: dict) -> None:
        """After a generation's optimiser step (trainer.generation already counts it), before its
        evaluation; `record` has the step's metrics but no accuracies yet."""

    def on_generation_end(self, trainer, record: dict) -> None:
        """After the generation is complete: evaluated when due, logged, checkpointed when due."""

    def on_run_end(self, trainer, report: dict) -> None:
        """After the final evaluation, with the report that report.json holds."""


class TensorBoardCallback(Callback):
    """Writes every generation's numeric metrics to a TensorBoard event file (extra `tensorboard`).

    Scalars are tagged by their metric name (fitness_mean, val_accuracy, ...) at step = generation.
    On resume, events after the checkpoint's generation are purged, so the curves have no duplicates.
    """

    def __init__(self, log_dir: str | Path | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency: the extra `tensorboard`
        except ImportError:
            raise SpikerollError("--tensorboard needs the tensorboard package; "
                                 "pip install 'spikeroll[tensorboard]'") from None
        self._writer_class, self.log_dir, self.writer = SummaryWriter, log_dir, None

    def on_run_start(self, trainer) -> None:
        """Open the event file (RUN_DIR/tensorboard unless `log_dir`), purging steps after a resume's."""
        log_dir = self.log_dir or trainer.out / "tensorboard"
        self.writer = self._writer_class(str(log_dir), purge_step=trainer.generation or None)

    def on_generation_end(self, trainer, record: dict) -> None:
        """Write the generation's numeric metrics as scalars and flush them to disk."""
        for name, value in record.items():
            if name != "generation" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, record["generation"])
        self.writer.flush()  # a killed run keeps every generation it logged

    def on_run_end(self, trainer, report: dict) -> None:
        """Close the event file."""
        self.writer.close()
