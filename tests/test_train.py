"""Training loop: resume equals an uninterrupted run, run-directory safety, learning on easy data."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from spikeroll.config import TrainConfig
from spikeroll.data.minibatch import batch_indices
from spikeroll.errors import SpikerollError
from spikeroll.es.fitness import member_fitness
from spikeroll.training.rundir import load_checkpoint
from spikeroll.training.trainer import Trainer


def synthetic_data(n=120, seed=0):
    """Class c lights up pixel block c: a task any working learner solves."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    frames = (torch.rand(n, 4, 2, 4, 4, generator=gen) < 0.05).to(torch.uint8)
    for i, c in enumerate(labels):
        frames[i, :, :, c, :] |= (torch.rand(4, 2, 4, generator=gen) < 0.7).to(torch.uint8)
    def split(a, b):
        return SimpleNamespace(frames=frames[a:b], labels=labels[a:b])
    return SimpleNamespace(train=split(0, 80), val=split(80, 100), test=split(100, 120), classes=4,
                           sensor_size=(4, 4, 2))


def small_config(**kw):
    base = dict(hidden=[8], population=8, batch_size=16, generations=6, checkpoint_every=2, eval_every=3,
                time_bins=4, sigma=0.1, lr=0.05, init_gain=2.0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


@pytest.mark.parametrize("strategy", ["eggroll", "openes", "bptt"])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, strategy):
    data = synthetic_data()  # augmented minibatches too must replay identically after a resume
    cfg = small_config(strategy=strategy, augment_shift=1, lr=0.01 if strategy == "bptt" else 0.05)
    Trainer(cfg, tmp_path / "full", data).run(progress=False)

    real_step = Trainer.step
    def dying_step(self):
        if self.generation == 5:
            raise KeyboardInterrupt  # killed mid-run, after the checkpoint of generation 4
        return real_step(self)
    monkeypatch.setattr(Trainer, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "cut", data).run(progress=False)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["generation"] == 4
    monkeypatch.setattr(Trainer, "step", real_step)
    Trainer(cfg, tmp_path / "cut", data, resume=True).run(progress=False)

    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for a, b in zip(full["params"], cut["params"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert metrics(tmp_path / "full") == metrics(tmp_path / "cut")
    assert [m["generation"] for m in metrics(tmp_path / "cut")] == list(range(6))
    population = json.loads((tmp_path / "cut" / "report.json").read_text())["population"]
    assert population == (None if strategy == "bptt" else 8)


def test_finished_run_is_not_overwritten(tmp_path):
    data, cfg = synthetic_data(), small_config(generations=2)
    Trainer(cfg, tmp_path, data).run(progress=False)
    with pytest.raises(SpikerollError, match="already holds a finished run.*--resume.*--overwrite"):
        Trainer(cfg, tmp_path, data)
    Trainer(cfg, tmp_path, data, overwrite=True).run(progress=False)


def test_incompatible_checkpoint_is_refused(tmp_path):
    data = synthetic_data()
    Trainer(small_config(generations=2), tmp_path, data).run(progress=False)
    with pytest.raises(SpikerollError, match="incompatible config.*hidden"):
        Trainer(small_config(generations=2, hidden=[16]), tmp_path, data, resume=True)


def test_nan_member_does_not_poison_update(tmp_path, monkeypatch):
    import spikeroll.es.objectives as objectives  # where the evaluators' objective computes −CE

    real = objectives.member_fitness
    def with_nan(logits, labels, temperature):
        fitness, acc = real(logits, labels, temperature)
        fitness[3] = float("nan")
        return fitness, acc
    monkeypatch.setattr(objectives, "member_fitness", with_nan)
    trainer = Trainer(small_config(generations=3), tmp_path, synthetic_data())
    trainer.run(progress=False)
    assert all(torch.isfinite(p).all() for p in trainer.net.params.values())


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(3, g, 50, 10) for g in range(5)])
    assert sorted(seen.tolist()) == list(range(50))
    assert torch.equal(batch_indices(3, 7, 50, 10), batch_indices(3, 7, 50, 10))


def test_eggroll_learns_easy_task(tmp_path):
    cfg = small_config(population=64, generations=60, lr=0.05, sigma=0.1, eval_every=60, checkpoint_every=60)
    report = Trainer(cfg, tmp_path, synthetic_data()).run(progress=False)
    assert report["train_accuracy"] >= 0.9 and report["val_accuracy"] >= 0.8


def test_init_from_copies_a_trained_network(tmp_path):
    data = synthetic_data()
    Trainer(small_config(generations=3), tmp_path / "pre", data).run(progress=False)
    pretrained = load_checkpoint(tmp_path / "pre" / "checkpoint.pt")["params"]
    tuned = Trainer(small_config(generations=3, init_from=str(tmp_path / "pre"), seed=9), tmp_path / "ft", data)
    for p, q in zip(tuned.net.params.values(), pretrained):  # before any step: exactly the pretrained net
        assert torch.equal(p, q)
    with pytest.raises(SpikerollError, match="layer sizes"):
        Trainer(small_config(hidden=[16], init_from=str(tmp_path / "pre")), tmp_path / "bad", data)
    with pytest.raises(SpikerollError, match="holds no checkpoint.pt"):
        Trainer(small_config(init_from=str(tmp_path / "nothing")), tmp_path / "bad2", data)


def test_momentum_is_adams_beta1(tmp_path):
    """Two Adam steps on fixed ES gradients (+1, then −3) against Adam written out by hand."""
    beta1, beta2, lr, eps = 0.5, 0.999, 0.05, 1e-8
    tr = Trainer(small_config(momentum=beta1, lr=lr, lr_schedule="constant"), tmp_path, synthetic_data())
    ascent = iter([1.0, -3.0])

    def fixed_gradient(*_, **__):
        value = next(ascent)
        return [torch.full_like(p, value) for p in tr.net.params.values()]

    tr.estimator.strategy.gradient = fixed_gradient
    start = tr.net.params["layer0.bias"].clone()
    tr.step()
    tr.step()
    g1, g2 = -1.0, 3.0  # the optimiser minimises, so it sees the negative ascent direction
    m, v = (1 - beta1) * g1, (1 - beta2) * g1**2
    first = lr * m / (1 - beta1) / ((v / (1 - beta2)) ** 0.5 + eps)
    m, v = beta1 * m + (1 - beta1) * g2, beta2 * v + (1 - beta2) * g2**2
    second = lr * (m / (1 - beta1**2)) / ((v / (1 - beta2**2)) ** 0.5 + eps)
    expected = start - first - second
    torch.testing.assert_close(tr.net.params["layer0.bias"], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(SpikerollError, match="momentum=1.0 must be in"):
        small_config(momentum=1.0).validate()


def test_member_fitness_is_cross_entropy_and_argmax_accuracy():
    """Against cross-entropy and accuracy written out per member and sample with math."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=gen) * 3
    logits[1, 2] = 0.5  # a tie: argmax takes the first class, so label 0 counts as right, 2 as wrong
    labels = torch.tensor([0, 3, 2, 1, 0])
    for temperature in (1.0, 2.5):
        fitness, acc = member_fitness(logits, labels, temperature)
        for n in range(3):
            ces, right = [], []
            for b in range(5):
                z = [float(v) / temperature for v in logits[n, b]]
                ces.append(math.log(sum(math.exp(v) for v in z)) - z[int(labels[b])])
                right.append(max(range(4), key=lambda c: (z[c], -c)) == int(labels[b]))
            assert fitness[n].item() == pytest.approx(-sum(ces) / 5, rel=1e-5)
            assert acc[n].item() == pytest.approx(sum(right) / 5)
