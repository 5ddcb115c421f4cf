"""The early-decision objective (`--objective early`): the logits per time bin against the network
run on recordings cut after each bin, the objective against a loop-by-loop hand computation, and a
short training run with its report."""

import math

import pytest
import torch

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError
from spikeroll.es.objectives import Objective
from spikeroll.nets import kernels
from spikeroll.nets.counts import SpikeCounts, all_firing_synops, bin_events
from spikeroll.nets.model import LayerNoise
from spikeroll.training.trainer import Trainer

from test_counts import P, T, make_case
from test_train import small_config, synthetic_data


def chunks(noise):
    return lambda r: [LayerNoise(**{f: None if getattr(nz, f) is None else getattr(nz, f)[r.start:r.stop]
                                    for f in ("weight_a", "weight_b", "weight_full", "bias")}) for nz in noise]


@pytest.mark.parametrize("readout", ["membrane", "spikes"])
@pytest.mark.parametrize("fused", [True, False])
def test_logits_per_bin_are_the_network_on_cut_recordings(readout, fused):
    if fused and not kernels.available():
        pytest.skip("numba is not installed")
    net, noise, frames = make_case("low")
    net.readout = readout
    net.use_kernel = fused
    per_bin = net.population_logits(frames, chunks(noise), P, 2, per_bin=True)  # (N, B, T, O)
    assert per_bin.shape == (2 * P, len(frames), T, 4)
    for t in range(1, T + 1):  # a sample's logits after bin t are those of its recording cut there
        cut = net.population_logits(frames[:, :t].contiguous(), chunks(noise), P, 2)
        if readout == "spikes":  # spike counts: exact
            assert torch.equal(per_bin[:, :, t - 1], cut)
        else:  # the running mean and the closed-form weighted sum add the same terms in another order
            torch.testing.assert_close(per_bin[:, :, t - 1], cut, rtol=1e-5, atol=1e-5)


def test_early_objective_against_a_hand_computation():
    gen = torch.Generator().manual_seed(11)
    N, B, Tb, O = 4, 6, 5, 3
    running = torch.randn(N, B, Tb, O, generator=gen) * 2
    labels = torch.randint(0, O, (B,), generator=gen)
    events = torch.randint(0, 9, (B, Tb), generator=gen).double()
    sizes = [20, 8, O]
    counts = SpikeCounts(float(events.sum()), [torch.zeros(N, dtype=torch.float64)], sizes, Tb, B)
    confidence, weight, temperature = 0.6, 3.0, 1.0
    fitness, acc = Objective("early", temperature, synops_weight=weight, early_confidence=confidence)(
        running, labels, counts, events)
    reference = all_firing_synops(sizes, Tb)
    for n in range(N):
        ce = spent = right = 0.0
        for b in range(B):
            stop = Tb - 1
            for t in range(Tb):
                logits = running[n, b, t].tolist()
                top = max(logits)
                denom = sum(math.exp(v - top) for v in logits)
                if 1.0 / denom >= confidence:  # the softmax's largest entry
                    stop = t
                    break
            logits = running[n, b, stop].tolist()
            top = max(logits)
            ce += -(logits[labels[b]] - top - math.log(sum(math.exp(v - top) for v in logits)))
            right += logits.index(top) == labels[b]
            spent += sum(events[b, : stop + 1].tolist()) * sizes[1]
        expected = -ce / B - weight * (spent / B) / reference
        assert fitness[n].item() == pytest.approx(expected, rel=1e-5)
        assert acc[n].item() == pytest.approx(right / B)


def test_bin_events_counts_each_bin():
    frames = torch.tensor([[[[0, 2], [1, 0]], [[3, 0], [0, 0]]]], dtype=torch.uint8)  # (B=1, T=2, 2, 2)
    assert bin_events(frames).tolist() == [[3.0, 3.0]]
    assert bin_events(-frames.float()).tolist() == [[3.0, 3.0]]  # signed values count |v| events


def test_early_objective_trains_and_reports(tmp_path):
    cfg = small_config(objective="early", early_confidence=0.5, synops_weight=1.0, generations=4,
                       eval_every=4, checkpoint_every=4)
    report = Trainer(cfg, tmp_path / "r", synthetic_data()).run(progress=False)
    assert 1.0 <= report["val_early_bins"] <= cfg.time_bins
    assert 0.0 <= report["val_early_accuracy"] <= 1.0 and report["val_early_synops"] > 0
    assert report["test_early_synops"] <= report["test_synops"] + 1e-9  # never more than all bins


@pytest.mark.parametrize("changes, message", [
    ({"objective": "early", "early_confidence": 1.5}, "early_confidence=1.5 must be in"),
    ({"objective": "early", "neuron": "loihi", "weight_bits": 8}, "--objective early needs the float LIF"),
])
def test_early_objective_bad_settings(changes, message):
    with pytest.raises(SpikerollError, match=message):
        TrainConfig(**changes).validate()
