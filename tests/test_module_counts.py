"""SynOp counts of a user's module's population forward (spikeroll.modules.counting), checked
against an independent brute force: per member, the explicitly perturbed float64 deep copy of the
model (tests/test_module_es.py's `member_copies`) run with plain forward hooks that record every
Linear/Conv input, and its SynOps counted entry by entry in Python loops."""

import itertools
import json
import textwrap

import pytest
import torch
from torch import nn

from spikeroll import TrainConfig, train_run
from spikeroll.errors import SpikerollError
from spikeroll.modules import EGGROLL
from spikeroll.modules.checks import reset_state
from spikeroll.modules.net import ModuleNet

from test_module_es import member_copies

snn = pytest.importorskip("snntorch")

B, T = 4, 3  # B a power of two: every per-inference value is exact, so the comparisons are exact


def spike(v):  # snnTorch's Heaviside returns float32; keep the model's dtype
    return (v > 0).to(v.dtype)


class LIF(nn.Module):
    """A hand-written Heaviside LIF neuron (state reset by reset_mem, as snnTorch's)."""

    def __init__(self, beta=0.8):
        super().__init__()
        self.beta, self.mem = beta, None

    def reset_mem(self):
        self.mem = None

    def forward(self, x):
        mem = x if self.mem is None else self.beta * self.mem + x
        out = spike(mem - 0.5)
        self.mem = mem - out * 0.5
        return out


class Dense(nn.Module):
    """Linear -> snnTorch Leaky -> Linear -> hand LIF -> Linear readout, looping over time."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(6, 5), snn.Leaky(beta=0.8, threshold=0.3, spike_grad=spike, init_hidden=True)
        self.fc2, self.lif2, self.fc3 = nn.Linear(5, 4), LIF(), nn.Linear(4, 3)

    def forward(self, x):
        return torch.stack([self.fc3(self.lif2(self.fc2(self.lif1(self.fc1(x[t]))))) for t in range(len(x))]).mean(0)


class Convolutional(nn.Module):
    """Conv2d (padding 1, stride 2, on a 7x7 input: the edges matter) -> LIF -> Linear, and a
    Linear fed the readout's analog current, which carries no events."""

    def __init__(self):
        super().__init__()
        self.conv, self.lif, self.fc = nn.Conv2d(2, 3, 3, stride=2, padding=1), LIF(0.7), nn.Linear(3 * 4 * 4, 3)
        self.gain = nn.Linear(3, 3)

    def forward(self, x):
        return torch.stack([self.gain(self.fc(self.lif(self.conv(x[t])).flatten(1))) for t in range(len(x))]).mean(0)


def events(shape, seed):
    """Event counts 0, 1 or 2 per entry (float)."""
    return torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(seed)).double()


def recorded_inputs(model, x):
    """{layer name: [input of every call]} of a plain forward."""
    calls = {name: [] for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    handles = [m.register_forward_hook(lambda m, args, y, name=name: calls[name].append(args[0].clone()))
               for name, m in model.named_modules() if name in calls]
    with torch.no_grad():
        reset_state(model)
        model(x)
    for h in handles:
        h.remove()
    return calls


def entry_fan_out(layer, position):
    """Synapses one input entry drives, by its receptive fields: for a conv, the output positions
    whose window (stride, padding) holds it, times the output channels."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    _, i, j = position
    height, width = layer.in_size
    out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    reached = sum(1 for oi in range(out_h) for oj in range(out_w)
                  if oi * sh - ph <= i < oi * sh - ph + kh and oj * sw - pw <= j < oj * sw - pw + kw)
    return reached * layer.out_channels


def brute_force(copies, x, input_layer):
    """Per member (one model each): SynOps per inference of the input layer and of the rest, per
    layer SynOps and rates, the all-firing reference, and the layers called with non-integer input."""
    records = [recorded_inputs(member, x) for member in copies]
    layers = dict(copies[0].named_modules())
    analog = {name for rec in records for name, calls in rec.items()
              if any(not float(v).is_integer() for c in calls for v in c.flatten())}
    counted = [name for name in records[0] if name not in analog]
    result = {"uncounted": sorted(analog), "reference": 0.0, "members": []}
    for name in counted:
        layer = layers[name]
        layer.in_size = tuple(records[0][name][0].shape[2:])
        ones = [entry_fan_out(layer, idx) for idx in _indices(records[0][name][0][0].shape)]
        result["reference"] += sum(ones) * len(records[0][name])
    for rec in records:
        synops, rate = {}, {}
        for name in counted:
            total = entries = events_sum = 0.0
            for call in rec[name]:
                for sample in call:
                    for idx in _indices(sample.shape):
                        value = float(sample[idx])
                        total += abs(value) * entry_fan_out(layers[name], idx)
                        events_sum += value
                        entries += 1
            synops[name], rate[name] = total / B, events_sum / entries
        hidden = sum(v for name, v in synops.items() if name != input_layer)
        result["members"].append({"synops": synops, "rate": rate, "hidden": hidden,
                                  "all": hidden + synops.get(input_layer, 0.0)})
    return result


def _indices(shape):
    """Every index of an array of this shape, as tuples of ints."""
    return [tuple(idx) for idx in itertools.product(*(range(n) for n in shape))]


def assert_counts_match(counts, want, input_layer, analog):
    assert counts.uncounted() == want["uncounted"] == analog
    assert counts.reference() == want["reference"]
    got = counts.per_member()
    names = [n for n in counts.names if n not in analog]
    for k, member in enumerate(want["members"]):
        assert float(got["synops_hidden"][k]) == member["hidden"]
        assert float(got["synops"][k]) == member["all"]
        for j, name in enumerate(names):
            assert float(got[f"synops_layer{j}"][k]) == member["synops"][name]
            assert float(got[f"rate_layer{j}"][k]) == member["rate"][name]
    assert counts.synops_input() == want["members"][0]["synops"][input_layer]
    assert float(got["synops_hidden"].min()) > 0
    return got


@pytest.mark.parametrize("build, shape, input_layer, analog", [
    (Dense, (T, B, 6), "fc1", []),
    (Convolutional, (T, B, 2, 7, 7), "conv", ["gain"]),
])
def test_population_counts_equal_a_brute_force_of_the_member_copies(build, shape, input_layer, analog):
    torch.manual_seed(5)
    model = build().double()
    es = EGGROLL(model, population=6, rank=1, sigma=0.4, seed=2)
    es.generation = 1
    x = events(shape, 7)
    found = []
    es.population_forward(x, counts=found)
    got = assert_counts_match(found[0], brute_force(member_copies(es), x, input_layer), input_layer, analog)
    assert len(set(got["synops_hidden"].tolist())) > 1  # the members differ: a real test of per-member counts


@pytest.mark.parametrize("build, shape, input_layer, analog", [
    (Dense, (T, B, 6), "fc1", []),
    (Convolutional, (T, B, 2, 7, 7), "conv", ["gain"]),
])
def test_the_mean_networks_counts_equal_a_brute_force(build, shape, input_layer, analog):
    """ModuleNet.logits(counts=): the plain module as one member (evaluation's val_synops)."""
    torch.manual_seed(5)
    model = build()
    x = events(shape, 7).float()
    net = ModuleNet(model, 0, 3, "cpu")
    found = []
    logits = net.logits(x.transpose(0, 1), counts=found)
    assert torch.equal(logits, net.logits(x.transpose(0, 1)))
    assert found[0].members == 1
    assert_counts_match(found[0], brute_force([model], x, input_layer), input_layer, analog)


def test_chunks_and_units_give_the_same_counts_as_one_pass():
    torch.manual_seed(6)
    model = Convolutional()
    x = events((T, B, 2, 7, 7), 8).float()
    whole, chunked = [], []
    EGGROLL(model, population=8, seed=1).population_forward(x, counts=whole)
    EGGROLL(model, population=8, seed=1, chunk_pairs=1).population_forward(x, counts=chunked)
    a, b = whole[0].per_member(), chunked[0].per_member()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("build, shape", [(Dense, (T, B, 6)), (Convolutional, (T, B, 2, 7, 7))])
def test_counting_changes_no_computed_value(build, shape):
    torch.manual_seed(7)
    model = build()
    x = events(shape, 9).float()
    plain = EGGROLL(model, population=8, seed=3, chunk_pairs=2).population_forward(x)
    found = []
    counted = EGGROLL(model, population=8, seed=3, chunk_pairs=2).population_forward(x, counts=found)
    assert torch.equal(plain, counted) and found[0].members == 8


FACTORY = textwrap.dedent("""
    import torch
    from torch import nn
    import snntorch as snn

    class Small(nn.Module):
        # frames (T, B, 2, 34, 34) -> logits (B, 10); the conv sees the events themselves
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
            self.lif = snn.Leaky(beta=0.9, init_hidden=True)
            self.fc = nn.Linear(4 * 17 * 17, 10)

        def forward(self, x):
            return torch.stack([self.fc(self.lif(self.conv(x[t])).flatten(1)) for t in range(x.shape[0])]).mean(0)

    def make():
        return Small()
""")


def module_config(tmp_path, **kw):
    path = tmp_path / "small.py"
    path.write_text(FACTORY)
    return TrainConfig(dataset="digits", model=f"{path}:make", population=8, batch_size=16, generations=2,
                       eval_every=2, time_bins=4, sigma=0.1, **kw)


def test_a_module_run_trains_for_synops_and_records_them(tmp_path):
    report = train_run(module_config(tmp_path, objective="synops", synops_weight=2.0), tmp_path / "run",
                       progress=False)
    assert report["val_synops"] > report["val_synops_hidden"] > 0  # the mean network's, at evaluation
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        assert r["synops"] > r["synops_hidden"] > 0 and 0 < r["rate_layer1"] < 1
        assert r["rate_layer0"] > 0  # the input's events per entry


def test_the_early_objective_is_refused_for_a_module(tmp_path):
    with pytest.raises(SpikerollError, match="--objective early needs the float LIF network") as info:
        module_config(tmp_path, objective="early").validate()
    assert "\n" not in str(info.value)


def test_a_fitness_function_gets_the_module_counts(tmp_path):
    fitness = tmp_path / "fit.py"
    fitness.write_text(textwrap.dedent("""
        import torch

        def fn(logits, labels, counts):
            # every member's own row: the hidden SynOps differ across members, the input's do not
            assert sorted(counts) == ["rate_layer0", "rate_layer1", "synops", "synops_hidden", "synops_layer0",
                                      "synops_layer1"]
            assert counts["synops_hidden"].shape == (len(logits),)
            return -counts["synops_hidden"]
    """))
    train_run(module_config(tmp_path, fitness=f"{fitness}:fn"), tmp_path / "run", progress=False)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["fitness_mean"] == pytest.approx(-first["synops_hidden"], rel=1e-6)


def test_workers_count_a_module_run_as_one_process_does(tmp_path):
    """--objective synops with --model on Ray workers: the same parameters and SynOps metrics."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        for name, extra in [("one", {}), ("ray", {"workers": 2, "threads_per_worker": 1})]:
            train_run(module_config(tmp_path, objective="synops", chunk_pairs=2, **extra), tmp_path / name,
                      progress=False)
    finally:
        ray.shutdown()
    runs = [torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["params"] for name in ("one", "ray")]
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    records = [[json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
               for name in ("one", "ray")]
    for a, b in zip(*records, strict=True):
        assert a["synops"] == b["synops"] and a["rate_layer1"] == b["rate_layer1"]
