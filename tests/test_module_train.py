"""`spikeroll train --model FILE.py:FACTORY`: a user's module through the Trainer (reports,
checkpoints, resume, eval), with EGGROLL, OpenAI-ES and BPTT."""

import json
import textwrap

import pytest
import torch

from spikeroll import TrainConfig, evaluate_run, train_run
from spikeroll.errors import SpikerollError
from spikeroll.modules.net import load_factory
from spikeroll.tools.plot import plot_runs
from spikeroll.training.rundir import load_trained

pytest.importorskip("snntorch")

FACTORY = textwrap.dedent("""
    import torch
    from torch import nn
    import snntorch as snn

    class Small(nn.Module):
        # frames (T, B, 2, 34, 34) -> logits (B, 10); loops over time itself
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(4)
            self.conv = nn.Conv2d(2, 4, 3)
            self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
            self.fc = nn.Linear(4 * 6 * 6, 10)
            self.lif2 = snn.Leaky(beta=torch.tensor(0.9), learn_beta=True, reset_mechanism="none")

        def forward(self, x):
            mem, total = self.lif2.init_leaky(), 0
            for t in range(x.shape[0]):
                _, mem = self.lif2(self.fc(self.lif1(self.conv(self.pool(x[t]))).flatten(1)), mem)
                total = total + mem
            return total / x.shape[0]

    def make():
        return Small()

    def not_a_module():
        return 3
""")


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "small.py"
    path.write_text(FACTORY)
    return f"{path}:make"


def config(factory, **kw):
    base = dict(dataset="digits", model=factory, population=8, batch_size=16, generations=4, eval_every=2,
                checkpoint_every=2, time_bins=4, sigma=0.1,
                lr_schedule="constant")  # a resumed shorter run then follows the same schedule
    base.update(kw)
    return TrainConfig(**base)


def saved_params(run):
    return torch.load(run / "checkpoint.pt", weights_only=False)["params"]


def test_eggroll_run_reports_checkpoints_resumes_and_evaluates(factory, tmp_path):
    full = train_run(config(factory), tmp_path / "full", progress=False)
    assert full["strategy"] == "eggroll" and full["generations"] == 4 and full["population"] == 8
    assert full["num_parameters"] == 4 * 2 * 9 + 4 + 144 * 10 + 10 + 1
    lines = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in lines] == [0, 1, 2, 3] and lines[1]["val_accuracy"] is not None

    train_run(config(factory, generations=2), tmp_path / "half", progress=False)
    cfg = json.loads((tmp_path / "half" / "config.json").read_text())
    cfg["generations"] = 4
    resumed = train_run(TrainConfig(**cfg), tmp_path / "half", resume=True, progress=False)
    assert resumed["generations"] == 4
    for a, b in zip(saved_params(tmp_path / "full"), saved_params(tmp_path / "half")):
        assert torch.equal(a, b)  # resumed = uninterrupted, bit for bit
    torch.manual_seed(0)
    assert not torch.equal(saved_params(tmp_path / "full")[0], load_factory(factory).conv.weight)  # it trained

    result = evaluate_run(tmp_path / "full", model=factory)  # naming the module confirms it may be imported
    assert result["val_accuracy"] == pytest.approx(full["val_accuracy"])
    _, net = load_trained(tmp_path / "full", factory)
    assert net.num_parameters == full["num_parameters"]
    warnings = []
    written = plot_runs([tmp_path / "full"], tmp_path / "plots", warn=warnings.append)
    assert [p.name for p in written] == ["curves.png"] and "no spike raster" in warnings[0]


@pytest.mark.parametrize("strategy", ["openes", "bptt"])
def test_other_strategies_train_the_same_module(factory, tmp_path, strategy):
    report = train_run(config(factory, strategy=strategy, generations=2, lr=0.005), tmp_path / strategy, progress=False)
    assert report["strategy"] == strategy and report["generations"] == 2
    torch.manual_seed(0)  # the run's seed: the factory builds the run's initial module
    start = load_factory(factory)
    assert not torch.equal(saved_params(tmp_path / strategy)[-1], start.lif2.beta.detach())


def test_bad_model_specs_have_one_line_errors(factory, tmp_path):
    path = factory.rpartition(":")[0]
    for spec, message in [("nofactory.py", "must be FILE.py:FACTORY"),
                          (f"{tmp_path}/missing.py:make", "does not exist"),
                          (f"{path}:absent", "defines no function 'absent'"),
                          (f"{path}:not_a_module", "returned int, not a torch.nn.Module")]:
        with pytest.raises(SpikerollError, match=message):
            load_factory(spec)
    with pytest.raises(SpikerollError, match="pool inside the module"):
        config(factory, pool=2).validate()


def test_distributed_workers_reproduce_the_single_process_module_run(factory, tmp_path):
    """--model on Ray workers (units of --chunk-pairs pairs): the same bits as one process."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        single = config(factory, generations=2, chunk_pairs=2)
        train_run(single, tmp_path / "one", progress=False)
        train_run(config(factory, generations=2, chunk_pairs=2, workers=2, threads_per_worker=1), tmp_path / "ray",
                  progress=False)
    finally:
        ray.shutdown()
    for a, b in zip(saved_params(tmp_path / "one"), saved_params(tmp_path / "ray"), strict=True):
        assert torch.equal(a, b)
