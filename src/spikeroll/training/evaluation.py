"""Accuracy of a trained network on a data split, in one pass or test-time augmented."""

from __future__ import annotations

import torch

from spikeroll.data.augment import shift_frames, shifts
from spikeroll.errors import SpikerollError
from spikeroll.nets.counts import bin_events
from spikeroll.nets.model import SpikingNet, decide_early, running_readout

EVAL_BATCH = 1000  # recordings per evaluation pass, fewer when their float frames pass the budget
EVAL_FRAMES_BUDGET_BYTES = 256 << 20


def eval_batch(split, batch: int | None) -> int:
    """Recordings per evaluation pass: `batch` when given, else EVAL_BATCH, or as many as fit
    EVAL_FRAMES_BUDGET_BYTES as float32 frames (long recordings: T = 300 bins of 2·34·34 pixels are
    2.8 MB each), so evaluating a split does not cost more memory than training does."""
    if batch:
        return batch
    per_recording = 4 * max(1, split.frames[0].numel())
    return max(1, min(EVAL_BATCH, EVAL_FRAMES_BUDGET_BYTES // per_recording))


@torch.no_grad()
def accuracy_and_counts(net, split, prefix: str = "", batch: int | None = None) -> dict:
    """{prefix}accuracy of the plain network on a split, and, for networks that count spikes
    (spikeroll.nets.counts; a --model module's at its Linear/Conv calls), its SynOps per inference
    and firing rates on that split, in one pass:
    {prefix}synops, {prefix}synops_hidden, {prefix}rate_layer{i}. {} when the split is absent;
    accuracy alone (as `accuracy`) for a network that counts nothing, or under autograd."""
    if split is None or len(split.labels) == 0:
        return {f"{prefix}accuracy": None}
    if not getattr(net, "counts_spikes", False):
        return {f"{prefix}accuracy": accuracy(net, split, batch)}
    batch = eval_batch(split, batch)
    correct, parts = 0, []
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        found: list = []
        pred = net.logits(frames, counts=found).argmax(-1)
        correct += int((pred.cpu() == split.labels[start : start + batch]).sum())
        parts.extend(found)
    result = {f"{prefix}accuracy": correct / len(split.labels)}
    if parts:
        result.update(type(parts[0]).merge_samples(parts).summary(prefix))  # SpikeCounts or ModuleCounts
    return result


@torch.no_grad()
def accuracy(net, split, batch: int | None = None, tta_shift: int = 0) -> float | None:
    """Accuracy of the plain network on a data split (None when the split is absent).

    `net` is anything with `.logits(frames) -> (B, classes)` and `.device`. tta_shift > 0 is
    test-time augmentation: each recording is classified by its class probabilities averaged over
    every translation by up to tta_shift pixels ((2·s + 1)² forward passes per recording), instead
    of one pass on the recording as it is."""
    if tta_shift < 0:
        raise SpikerollError(f"tta_shift={tta_shift} must be >= 0 (0 = one pass per recording)")
    if split is None or len(split.labels) == 0:
        return None
    batch, correct = eval_batch(split, batch), 0
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        if tta_shift == 0:
            pred = net.logits(frames).argmax(-1)
        else:
            pred = sum(torch.softmax(net.logits(shift_frames(frames, dy, dx)), -1)
                       for dy, dx in shifts(tta_shift)).argmax(-1)
        correct += int((pred.cpu() == split.labels[start : start + batch]).sum())
    return correct / len(split.labels)


@torch.no_grad()
def early_exit(net, split, confidence: float, prefix: str = "", batch: int | None = None) -> dict:
    """Early decision on a split (the float LIF network, PyTorch path): each recording is classified
    at the first time bin t where the readout's softmax confidence, max softmax(logits so far),
    reaches `confidence`, or at the last bin. Logits so far are those of the recording cut after
    bin t (the running mean of the leaky readout, or the output spike counts so far), so the
    decision is what a chip stopping at t would give. Returns {prefix}early_accuracy,
    {prefix}early_bins (mean bins used), {prefix}early_synops and {prefix}early_synops_hidden
    (SynOps per inference actually spent: input events and spikes of bins <= t only)."""
    if not isinstance(net, SpikingNet):
        raise SpikerollError("--early-exit-confidence runs on the float LIF network (the PyTorch path); "
                             "this run's network is an integer or --model network")
    if not 0.0 < confidence <= 1.0:
        raise SpikerollError(f"early-exit confidence {confidence} must be in (0, 1], e.g. 0.9")
    if split is None or len(split.labels) == 0:
        return {f"{prefix}early_accuracy": None}
    sizes, batch = net.sizes, eval_batch(split, batch)
    correct = bins = synops = hidden = 0.0
    weight, bias = net.layer_params()[-1]
    for start in range(0, len(split.labels), batch):
        frames = split.frames[start : start + batch].to(net.device, torch.float32)
        labels = split.labels[start : start + batch]
        trains = net.spike_trains(frames)  # [(T, B, width)] of the hidden layers (and a spiking readout)
        T, B = frames.shape[1], frames.shape[0]
        last = trains[len(sizes) - 3]  # the last hidden layer, which drives the readout
        current = last @ weight.t() + bias  # (T, B, classes)
        running = running_readout(current[None], net.beta, net.readout, net.threshold, net.reset)[0]
        stop, decided = decide_early(running.transpose(0, 1), confidence)  # (B,), (B, classes)
        pred = decided.argmax(-1)
        correct += float((pred.cpu() == labels).sum())
        bins += float((stop + 1).sum())
        used = (torch.arange(T, device=stop.device).view(T, 1) <= stop.view(1, B)).to(frames.dtype)  # (T, B)
        spent_input = float((bin_events(frames).t() * used).sum()) * sizes[1]
        spent_hidden = sum(float((trains[i].sum(2) * used).sum()) * sizes[i + 2] for i in range(len(sizes) - 2))
        synops += spent_input + spent_hidden
        hidden += spent_hidden
    n = len(split.labels)
    return {f"{prefix}early_accuracy": correct / n, f"{prefix}early_bins": bins / n,
            f"{prefix}early_synops": synops / n, f"{prefix}early_synops_hidden": hidden / n}
