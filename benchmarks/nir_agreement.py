"""How often another reader of an exported NIR graph predicts what spikeroll predicts: the
measurement behind docs/deploy.md's reader x reset table.

For each run directory given, the trained network is exported (`spikeroll.interop.nir`) and run by
each reader on every recording of the dataset (all splits together; the real subset's 1,000):
  spikeroll  the written file read back (`import_graph`), which honours spikeroll's own reset rule
  snnTorch   `spikeroll.interop.readers.to_snntorch`: snn.Leaky neurons as snnTorch's importer
             builds them (zero reset, strict threshold) plus the LI and batched Flatten it lacks
A subtract-reset network runs as a zero-reset one in snnTorch (NIR cannot say "subtract"): that
row measures the cost of the approximation. Prints a markdown table of the share of recordings
whose predicted class equals spikeroll's, the share of identical spikes (every hidden neuron and
step of the first 100 recordings) and each reader's validation accuracy; writes OUT if given.

Usage:
  python benchmarks/nir_agreement.py runs/nir-es-zero runs/nir-es-subtract \\
      --data-dir ../shared/data/nmnist-subset --out docs/results/nir_agreement.md
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch

from spikeroll.api import load_data
from spikeroll.interop.nir import NIRExportWarning, export_graph, import_graph, write_graph
from spikeroll.interop.readers import to_snntorch
from spikeroll.training.rundir import load_trained

SPIKE_SAMPLE = 100  # recordings whose spikes are compared neuron by neuron


def snntorch_outputs(graph, frames: torch.Tensor, batch: int = 500):
    """Logits of every recording, and the hidden spikes (T, n, width) of the first SPIKE_SAMPLE."""
    import snntorch as snn

    model, record = to_snntorch(graph), []
    leaky = [m for m in model.step.modules() if isinstance(m, snn.Leaky)]
    hooks = [m.register_forward_hook(lambda m, i, out: record.append((m, out))) for m in leaky]
    with torch.no_grad():
        logits = torch.cat([model(frames[s:s + batch]) for s in range(0, len(frames), batch)])
        record.clear()
        model(frames[:SPIKE_SAMPLE])
    for hook in hooks:
        hook.remove()
    spikes = [torch.stack([out for m, out in record if m is layer]) for layer in leaky]
    return logits, spikes


def measure(run_dir: Path, data_dir: str | None) -> dict:
    cfg, net = load_trained(run_dir)
    if data_dir:
        cfg.data_dir = data_dir
    data = load_data(cfg, progress=False)
    splits = [s for s in (data.train, data.val, data.test) if s is not None]
    frames = torch.cat([s.frames for s in splits])
    labels = torch.cat([s.labels for s in splits])
    val = slice(len(data.train.labels), len(data.train.labels) + len(data.val.labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRExportWarning)
        graph = export_graph(net, tuple(frames.shape[2:]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_graph(graph, Path(tmp) / "net.nir")
        reread = import_graph(path).net
    with torch.no_grad():
        ours = torch.cat([net.logits(frames[s:s + 500].float()) for s in range(0, len(frames), 500)])
        back = torch.cat([reread.logits(frames[s:s + 500].float()) for s in range(0, len(frames), 500)])
        our_spikes = net.spike_trains(frames[:SPIKE_SAMPLE].float())
    theirs, their_spikes = snntorch_outputs(graph, frames)
    hidden_same = sum(int((a == b).sum()) for a, b in zip(our_spikes, their_spikes[: len(our_spikes)]))
    hidden_total = sum(a.numel() for a in our_spikes)
    pred = ours.argmax(-1)
    accuracy = lambda logits: float((logits.argmax(-1)[val] == labels[val]).float().mean())  # noqa: E731
    return {"run": str(run_dir), "strategy": cfg.strategy, "reset": cfg.reset, "recordings": len(labels),
            "spikeroll_same": float((back.argmax(-1) == pred).float().mean()),
            "snntorch_same": float((theirs.argmax(-1) == pred).float().mean()),
            "snntorch_spikes_same": hidden_same / hidden_total,
            "val_accuracy": accuracy(ours), "snntorch_val_accuracy": accuracy(theirs)}


def table(rows: list[dict]) -> str:
    lines = ["| network (run) | reset | reader | identical predictions | identical hidden spikes "
             f"(first {SPIKE_SAMPLE}) | val accuracy (spikeroll → reader) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        name = f"{r['strategy']} ({Path(r['run']).name})"
        lines.append(f"| {name} | {r['reset']} | spikeroll (file read back) | "
                     f"{r['spikeroll_same']:.1%} of {r['recordings']} | — | {r['val_accuracy']:.1%} |")
        lines.append(f"| {name} | {r['reset']} | snnTorch 1.0 (`to_snntorch`) | "
                     f"{r['snntorch_same']:.1%} of {r['recordings']} | {r['snntorch_spikes_same']:.4%} | "
                     f"{r['val_accuracy']:.1%} → {r['snntorch_val_accuracy']:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of trained networks")
    parser.add_argument("--data-dir", default=None, help="dataset root, if not the runs' own")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    args = parser.parse_args()
    text = table([measure(run, args.data_dir) for run in args.runs])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
