"""Long recordings: a population forward evaluates the minibatch in blocks of samples once its shared
inputs would pass SHARED_INPUT_BUDGET_BYTES, so a generation's memory stays flat in T."""

import pytest
import torch

from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets import model
from spikeroll.nets.model import SpikingNet


@pytest.mark.parametrize("kernel", [True, False], ids=["fused", "pytorch"])
def test_blocked_forward_equals_each_sample_alone(monkeypatch, kernel):
    """With a budget of 16 samples, logits of 40 samples equal each sample's logits computed on its
    own, and the spike counts equal the sum of the per-sample counts."""
    torch.manual_seed(0)
    net = SpikingNet([30, 24, 5], init_gain=2.0)
    net.use_kernel = kernel
    strategy = EvolutionStrategy(net.params, 8, 1, 0)
    frames = (torch.rand(40, 12, 30) < 0.3).to(torch.uint8)

    def noise(pairs):
        return strategy.ask(3, pairs, 0.05)

    per_sample = 2 * 4 * 12 * (30 + 24)
    monkeypatch.setattr(model, "SHARED_INPUT_BUDGET_BYTES", 16 * per_sample)
    assert net.sample_block(frames) == 16  # blocks of 16, 16, 8
    found = []
    blocked = net.population_logits(frames, noise, 4, 2, counts=found)
    monkeypatch.setattr(model, "SHARED_INPUT_BUDGET_BYTES", 1 << 40)
    alone, alone_counts = [], []
    for i in range(len(frames)):
        one = []
        alone.append(net.population_logits(frames[i:i + 1], noise, 4, 2, counts=one))
        alone_counts.append(one[0].per_member())
    torch.testing.assert_close(blocked, torch.cat(alone, dim=1), rtol=1e-5, atol=1e-6)
    counts = found[0].per_member()
    for key in ("synops", "synops_hidden"):
        expected = torch.stack([c[key] for c in alone_counts]).sum(0) / len(frames)  # per inference
        torch.testing.assert_close(counts[key], expected, rtol=1e-12, atol=0)


def test_block_sizes():
    """All samples while they fit; whole kernel blocks of 64 above 64; at least one sample."""
    net = SpikingNet([578, 256, 10])
    per_sample = 2 * 4 * (578 + 256)
    assert net.sample_block(torch.empty(256, 10, 578, device="meta")) == 256  # the shipped config at T = 10: unchanged
    fits = model.SHARED_INPUT_BUDGET_BYTES // (300 * per_sample)
    assert net.sample_block(torch.empty(256, 300, 578, device="meta")) == fits // 64 * 64 if fits >= 64 else fits
    assert net.sample_block(torch.empty(4, 10 ** 6, 578, device="meta")) == 1


def test_evaluation_batches_long_recordings_within_the_budget(monkeypatch):
    """Evaluation passes hold at most EVAL_FRAMES_BUDGET_BYTES of float frames; the accuracy and
    counts are those of one pass over the whole split."""
    from types import SimpleNamespace

    from spikeroll.training import evaluation

    torch.manual_seed(1)
    net = SpikingNet([30, 24, 5], init_gain=2.0)
    split = SimpleNamespace(frames=(torch.rand(50, 12, 30) < 0.3).to(torch.uint8), labels=torch.randint(0, 5, (50,)))
    whole = evaluation.accuracy_and_counts(net, split, "val_")
    assert evaluation.eval_batch(split, None) == evaluation.EVAL_BATCH  # all 50 in one pass
    monkeypatch.setattr(evaluation, "EVAL_FRAMES_BUDGET_BYTES", 7 * 4 * 12 * 30)
    assert evaluation.eval_batch(split, None) == 7 and evaluation.eval_batch(split, 9) == 9
    pred = net.logits(split.frames.float()).argmax(-1)
    assert whole["val_accuracy"] == int((pred == split.labels).sum()) / 50
    blocked = evaluation.accuracy_and_counts(net, split, "val_")
    assert blocked.keys() == whole.keys()
    for key in whole:
        assert blocked[key] == pytest.approx(whole[key], rel=1e-12), key
