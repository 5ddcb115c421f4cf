"""Spike and SynOp counts (spikeroll.nets.counts) against brute-force references, and the objectives
(spikeroll.es.objectives) against hand-computed values.

The float reference is a NumPy simulation written out loop by loop (members, samples, bins,
neurons) with each member's weights formed explicitly: W + s·A·Bᵀ (LayerNoise.weight_a already
holds σ·A/√r) or W + s·E, bias b + s·c. Weights, noise and β are dyadic and the inputs binary, so
float32 arithmetic is exact on every path and the counts must agree exactly.
"""

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spikeroll.cli import main
from spikeroll.errors import SpikerollError
from spikeroll.es.fitness import member_fitness
from spikeroll.es.objectives import Objective
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets import kernels
from spikeroll.nets.counts import SpikeCounts, all_firing_synops
from spikeroll.nets.integer import IntegerNet
from spikeroll.nets.model import LayerNoise, SpikingNet

SIZES = [12, 10, 7, 4]
T, B, P = 5, 70, 3  # 70 samples: two kernel blocks, the second partial


def dyadic(shape, gen, scale, bits=5):
    """Uniform values in ±scale rounded to multiples of 2^-bits (exact in float32)."""
    return torch.round((torch.rand(shape, generator=gen) * 2 - 1) * scale * 2**bits) / 2**bits


def make_case(kind: str, reset: str = "subtract"):
    gen = torch.Generator().manual_seed(3)
    net = SpikingNet(SIZES, beta=0.5, threshold=1.0, reset=reset)
    for name, p in net.params.items():
        p.copy_(dyadic(p.shape, gen, 1.0 if "weight" in name else 0.25))
    noise = []
    for out, n_in in zip(SIZES[1:], SIZES[:-1]):
        if kind == "low":
            layer = LayerNoise(weight_a=dyadic((P, out, 1), gen, 0.5, 3), weight_b=dyadic((P, n_in, 1), gen, 1.0, 3),
                               bias=dyadic((P, out), gen, 0.25))
        else:
            layer = LayerNoise(weight_full=dyadic((P, out, n_in), gen, 0.25), bias=dyadic((P, out), gen, 0.25))
        noise.append(layer)
    frames = (torch.rand(B, T, SIZES[0], generator=gen) < 0.4).float()
    return net, noise, frames


def brute_force(net, noise, frames):
    """Spikes per hidden layer and member (2P,) by explicit loops, and the input events."""
    params = [p.numpy().astype(np.float64) for p in net.params.values()]
    x = frames.numpy().astype(np.float64)
    hidden = len(SIZES) - 2
    spikes = np.zeros((hidden, 2 * P))
    for m in range(2 * P):
        k, sign = m // 2, 1.0 if m % 2 == 0 else -1.0
        weights, biases = [], []
        for i in range(hidden):  # the readout's weights play no part in the counts
            nz = noise[i]
            delta = nz.weight_a[k].numpy() @ nz.weight_b[k].numpy().T if nz.weight_full is None \
                else nz.weight_full[k].numpy()
            weights.append(params[2 * i] + sign * delta)
            biases.append(params[2 * i + 1] + sign * nz.bias[k].numpy())
        for b in range(B):
            inputs = [x[b, t] for t in range(T)]
            for i in range(hidden):
                v = np.zeros(SIZES[i + 1])
                out = []
                for t in range(T):
                    s = np.zeros(SIZES[i + 1])
                    for h in range(SIZES[i + 1]):
                        current = biases[i][h] + sum(weights[i][h, j] * inputs[t][j] for j in range(SIZES[i]))
                        v[h] = net.beta * v[h] + current
                        if v[h] >= net.threshold:
                            s[h] = 1.0
                            v[h] = v[h] - net.threshold if net.reset == "subtract" else 0.0
                    spikes[i, m] += s.sum()
                    out.append(s)
                inputs = out
    return spikes, float(x.sum())


@pytest.fixture(scope="module")
def references():
    cases = {}
    for kind, reset in (("low", "subtract"), ("full", "zero")):
        net, noise, frames = make_case(kind, reset)
        cases[kind] = (net, noise, frames, *brute_force(net, noise, frames))
    return cases


@pytest.mark.parametrize("kind", ["low", "full"])
@pytest.mark.parametrize("fused", [True, False])
def test_float_counts_match_brute_force(references, kind, fused):
    net, noise, frames, spikes, events = references[kind]
    if fused and not kernels.available():
        pytest.skip("numba is not installed")
    net.use_kernel = fused
    found = []
    # the chunked population forward (a noise function, one pair per chunk) counts the same members
    logits = net.population_logits(frames, lambda r: [LayerNoise(**{f: None if getattr(nz, f) is None else
                                                                       getattr(nz, f)[r.start:r.stop]
                                                                       for f in ("weight_a", "weight_b",
                                                                                 "weight_full", "bias")})
                                                       for nz in noise], P, 1, counts=found)
    counts = found[0]
    assert logits.shape == (2 * P, B, SIZES[-1])
    assert counts.input_events == events and counts.samples == B and counts.time_bins == T
    for i in range(len(SIZES) - 2):
        assert counts.spikes[i].tolist() == spikes[i].tolist(), f"layer {i}"
    # the derived numbers, by hand
    hidden = sum(spikes[i] * SIZES[i + 2] for i in range(len(SIZES) - 2)) / B
    np.testing.assert_allclose(counts.synops_hidden().numpy(), hidden, rtol=1e-12)
    np.testing.assert_allclose(counts.synops().numpy(), hidden + events * SIZES[1] / B, rtol=1e-12)
    rates = counts.per_member()
    for i in range(len(SIZES) - 2):
        np.testing.assert_allclose(rates[f"rate_layer{i}"].numpy(), spikes[i] / (SIZES[i + 1] * T * B), rtol=1e-12)
    # counting changes no computed value
    net_logits = net.population_logits(frames, noise)
    assert torch.equal(net_logits, logits)


def test_plain_network_counts_are_member_zero_of_no_noise(references):
    net, _, frames, _, events = references["low"]
    for fused in (True, False):
        net.use_kernel = fused
        found = []
        assert torch.equal(net.logits(frames, counts=found), net.logits(frames))
        trains = net.spike_trains(frames)
        assert [float(s.sum()) for s in found[0].spikes[:]] == [float(t.sum()) for t in trains]
        assert found[0].members == 1 and found[0].input_events == events


def test_integer_messages_match_its_recorded_spikes():
    gen = torch.Generator().manual_seed(5)
    net = IntegerNet([12, 10, 7, 4], 8, init_gain=3.0, seed=2)
    es = EvolutionStrategy(net.params, 2 * P, 1, 0)
    frames = (torch.rand(B, T, 12, generator=gen) < 0.4).to(torch.uint8) * 2  # event counts of 0 or 2
    found = []
    net.population_logits(frames, lambda r: es.ask(0, r, 0.2), P, 1, counts=found)
    counts = found[0]
    trace = net.trace(frames, es.ask(0, range(P), 0.2))
    for i in range(len(SIZES) - 2):
        recorded = trace[i]["spikes"].sum((1, 2, 3)).double()  # (M, S, B, H): every step of every member
        assert torch.equal(counts.spikes[i], recorded)
        assert recorded.sum() > 0
    # graded input: one message per nonzero entry, whatever its event count
    assert counts.input_events == float((frames != 0).sum())
    messages = sum(trace[i]["spikes"].sum((1, 2, 3)).double() * SIZES[i + 2] for i in range(2))
    torch.testing.assert_close(counts.synops_hidden() * B, messages, rtol=1e-12, atol=0)
    plain = []
    net.logits(frames, counts=plain)
    assert plain[0].spikes[0].item() == net.trace(frames)[0]["spikes"].sum().item()


# objectives --------------------------------------------------------------------------------------
def small_case():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], [[0.0, 1.0, 3.0], [1.0, 0.0, 0.0]]])
    labels = torch.tensor([0, 1])
    counts = SpikeCounts(input_events=2.0, spikes=[torch.tensor([1.0, 3.0])], sizes=[4, 3, 2], time_bins=2,
                         samples=1)
    return logits, labels, counts


def hand_ce(logits, labels, temperature=1.0):
    out = []
    for member in logits:
        losses = [float(torch.logsumexp(row / temperature, 0) - row[y] / temperature) for row, y in zip(member, labels)]
        out.append(sum(losses) / len(losses))
    return torch.tensor(out, dtype=torch.float64)


def test_objectives_by_hand():
    logits, labels, counts = small_case()
    ce = hand_ce(logits, labels, 0.5)
    fitness, acc = Objective("ce", 0.5)(logits, labels, counts)
    reference = member_fitness(logits, labels, 0.5)
    assert torch.equal(fitness, reference[0]) and torch.equal(acc, reference[1])  # the default, bit for bit
    np.testing.assert_allclose(fitness.double(), -ce, rtol=1e-6)
    assert acc.tolist() == [1.0, 0.0]
    assert Objective("accuracy")(logits, labels, counts)[0].tolist() == [1.0, 0.0]
    # synops per inference: input 2 events × 3 synapses + spikes × 2 synapses = [8, 12]
    assert counts.synops().tolist() == [8.0, 12.0] and counts.synops_hidden().tolist() == [2.0, 6.0]
    assert all_firing_synops([4, 3, 2], 2) == 36.0  # (4·3 + 3·2) synapses × 2 bins
    fitness, _ = Objective("synops", 1.0, synops_weight=0.5)(logits, labels, counts)
    np.testing.assert_allclose(fitness.double(), -hand_ce(logits, labels) - 0.5 * torch.tensor([8.0, 12.0]) / 36,
                               rtol=1e-6)
    fitness, _ = Objective("budget", 1.0, synops_weight=2.0, synops_budget=10.0)(logits, labels, counts)
    np.testing.assert_allclose(fitness.double(), -hand_ce(logits, labels) - torch.tensor([0.0, 0.4]), rtol=1e-6)
    assert counts.summary() == {"synops": 10.0, "synops_hidden": 4.0, "rate_layer0": 2.0 / (3 * 2 * 1)}


def test_custom_fitness_and_its_errors():
    logits, labels, counts = small_case()
    seen = {}

    def fewest_synops(lg, lb, c):
        seen.update(c)
        return -c["synops"]

    fitness, acc = Objective(fitness=fewest_synops)(logits, labels, counts)
    assert fitness.tolist() == [-8.0, -12.0] and acc.tolist() == [1.0, 0.0]
    assert set(seen) == {"synops", "synops_hidden", "synops_layer0", "synops_layer1", "rate_layer0"}
    for bad, fragment in ((lambda lg, lb, c: torch.zeros(3), "shape (3,)"),
                          (lambda lg, lb, c: torch.tensor([0.0, float("nan")]), "NaN"),
                          (lambda lg, lb, c: "x", "not a tensor"),
                          (lambda lg, lb, c: 1 / 0, "ZeroDivisionError")):
        with pytest.raises(SpikerollError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            Objective(fitness=bad)(logits, labels, counts)
    for kwargs, fragment in (({"name": "joules"}, "unknown objective"), ({"name": "synops", "synops_weight": -1.0},
                             "synops_weight"), ({"name": "budget"}, "synops-budget"),
                             ({"name": "budget", "synops_budget": -5.0}, "synops_budget")):
        with pytest.raises(SpikerollError, match=fragment):
            Objective(**kwargs)


# the command line --------------------------------------------------------------------------------
TINY = ["--hidden", "8", "--population", "4", "--batch-size", "8", "--generations", "2", "--time-bins", "3",
        "--quiet", "--eval-every", "1"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args,fragments", [
    (["--objective", "joules"], ["joules"]),
    (["--objective", "synops", "--synops-weight", "-1"], ["synops_weight=-1"]),
    (["--objective", "budget"], ["--synops-budget"]),
    (["--objective", "budget", "--synops-budget", "-3"], ["synops_budget=-3"]),
    (["--objective", "synops", "--strategy", "bptt"], ["bptt"]),
    (["--fitness", "nowhere.py:fn"], ["nowhere.py"]),
])
def test_cli_rejects_bad_objectives(tmp_path, args, fragments):
    one_line_error(run("train", *TINY, "--out", str(tmp_path / "run"), *args), *fragments)


def test_cli_objective_run_reports_counts_and_fitness_file_trust(tmp_path):
    out = tmp_path / "run"
    fitness_file = tmp_path / "fit.py"
    fitness_file.write_text("def fewest(logits, labels, counts):\n    return -counts['synops_hidden']\n")
    spec = f"{fitness_file}:fewest"
    result = run("train", *TINY, "--out", str(out), "--fitness", spec)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["val_synops"] > report["val_synops_hidden"] > 0 and 0 < report["val_rate_layer0"] < 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["synops"] > r["synops_hidden"] >= 0 and "rate_layer0" in r for r in records)
    assert "val_synops" in records[-1] and "test_rate_layer0" in records[-1]
    # resuming imports the file: it must be named again; eval never imports it
    before = {name for name in sys.modules if name.startswith("spikeroll_user_fitness_")}
    one_line_error(run("train", "--out", str(out), "--resume", "--generations", "3", "--quiet"),
                   "--fitness", "confirm you trust it")
    evaluated = run("eval", str(out), "--early-exit-confidence", "0.5")
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.output[evaluated.output.index("{"):])
    assert "val_synops" in result and 1 <= result["val_early_bins"] <= 3
    assert result["val_early_synops"] <= result["val_synops"] + 1e-9
    one_line_error(run("eval", str(out), "--early-exit-confidence", "0"), "must be in (0, 1]")
    assert {name for name in sys.modules if name.startswith("spikeroll_user_fitness_")} == before
    more = run("train", "--out", str(out), "--resume", "--generations", "3", "--quiet", "--fitness", spec)
    assert more.exit_code == 0, more.output


def test_budget_objective_trains(tmp_path):
    result = run("train", *TINY, "--out", str(tmp_path / "run"), "--objective", "budget", "--synops-budget", "50",
                 "--synops-weight", "3")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["objective"] == "budget"


# early decision ----------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["membrane", "spikes"])
def test_early_exit_is_the_recording_cut_at_its_first_confident_bin(readout):
    from types import SimpleNamespace

    from spikeroll.training.evaluation import early_exit

    gen = torch.Generator().manual_seed(7)
    net = SpikingNet([12, 10, 7, 4], init_gain=3.0, seed=4, readout=readout)
    frames = (torch.rand(40, 6, 12, generator=gen) < 0.4).float()
    labels = torch.randint(0, 4, (40,), generator=gen)
    net.use_kernel = False
    # brute force: every sample, every cut; the decision is the first cut whose confidence passes
    confs = torch.stack([torch.softmax(net.logits(frames[:, :t]), -1).amax(-1) for t in range(1, 7)])  # (T, B)
    values = confs.flatten().sort().values
    gaps = values[1:] - values[:-1]
    middle = len(values) // 2
    i = middle + int(gaps[middle:].argmax())  # a threshold far from every confidence: no rounding ties
    threshold = float(values[i] + values[i + 1]) / 2
    correct = bins = spent = 0.0
    for b in range(40):
        stop = next((t for t in range(1, 7) if confs[t - 1, b] >= threshold), 6)
        found = []
        logits = net.logits(frames[b : b + 1, :stop], counts=found)
        correct += float(logits.argmax(-1).item() == labels[b].item())
        bins += stop
        spent += float(found[0].synops()[0])
    got = early_exit(net, SimpleNamespace(frames=frames, labels=labels), threshold, "val_", batch=16)
    assert got["val_early_accuracy"] == correct / 40 and got["val_early_bins"] == bins / 40
    assert 1 < got["val_early_bins"] < 6
    np.testing.assert_allclose(got["val_early_synops"], spent / 40, rtol=1e-9)
    with pytest.raises(SpikerollError, match="must be in"):
        early_exit(net, SimpleNamespace(frames=frames, labels=labels), 1.5)
    with pytest.raises(SpikerollError, match="float LIF network"):
        early_exit(IntegerNet([12, 10, 4], 8), SimpleNamespace(frames=frames, labels=labels), 0.9)
