"""What a user's module must satisfy for its population to run as one batch of N·B samples, and
the one-line errors when it does not."""

from __future__ import annotations

import torch
from torch import nn

from spikeroll.errors import SpikerollError
from spikeroll.modules.layers import LAYERS

# Modules holding weights that are neither elementwise nor a Linear/Conv1d/Conv2d product.
UNSUPPORTED = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Embedding,
               nn.EmbeddingBag, nn.RNNBase, nn.Bilinear, nn.MultiheadAttention)


def _label(name: str, module: nn.Module) -> str:
    return f"module {name or '<top level>'!r} ({type(module).__name__})"


def check_structure(model: nn.Module) -> None:
    """Refuse, before any forward, the modules that would make the estimate silently wrong."""
    if not isinstance(model, nn.Module):
        raise SpikerollError(f"EGGROLL needs a torch.nn.Module, got {type(model).__name__}; pass your network")
    for name, m in model.named_modules():
        trainable = any(p.requires_grad for p in m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise SpikerollError(f"{_label(name, m)} is in training mode and mixes samples across the batch "
                                 "(all members run as one batch); call model.eval() or remove it")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise SpikerollError(f"{_label(name, m)} is in training mode: its random mask would differ between "
                                 "members and drown the fitness signal; call model.eval() (ES needs no train mode)")
        if isinstance(m, UNSUPPORTED) and trainable:
            raise SpikerollError(f"{_label(name, m)} holds weights spikeroll cannot perturb per member (supported: "
                                 "Linear, Conv1d, Conv2d and elementwise parameters); freeze it: requires_grad_(False)")
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.weight.requires_grad and m.groups != 1:
            raise SpikerollError(f"{_label(name, m)} is a grouped convolution (groups={m.groups}), which spikeroll "
                                 "does not perturb yet; use groups=1 or freeze it with requires_grad_(False)")
        if not isinstance(m, LAYERS) and trainable and m is model:
            names = [n for n, p in m.named_parameters(recurse=False) if p.requires_grad]
            raise SpikerollError(f"parameter {names[0]!r} is held by the top-level module, whose input is not "
                                 "batch-first; move it into a submodule called once per time step, or freeze it")
    if not any(isinstance(m, LAYERS) and m.weight.requires_grad for m in model.modules()):
        raise SpikerollError(f"{type(model).__name__} has no trainable weight matrix (nn.Linear, nn.Conv1d or "
                             "nn.Conv2d), which is what EGGROLL perturbs at low rank; add one or unfreeze it")


def reset_state(model: nn.Module) -> None:
    """Start every forward from rest: modules with a `reset_mem()` (snnTorch neurons with
    init_hidden=True) would otherwise carry hidden state from the previous minibatch."""
    for m in model.modules():
        if callable(getattr(m, "reset_mem", None)):  # an optional third-party method (snnTorch's neurons)
            m.reset_mem()


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def check_per_sample(model: nn.Module, x: torch.Tensor, batch_axis: int, out_axis: int) -> None:
    """Sample 0's outputs must not change when sample 1 of its minibatch does. Runs the plain
    model on two 2-sample batches that differ only in sample 1 and names the first module (in
    completion order) whose output for sample 0 moved."""
    pair = x.narrow(batch_axis, 0, 2)
    other = pair.clone()
    second = other.select(batch_axis, 1)
    second.copy_(torch.ones_like(second) if not second.any() else torch.zeros_like(second))
    records, names = [], {id(m): name for name, m in model.named_modules()}
    for inputs in (pair, other):
        seen: list[tuple[str, nn.Module, torch.Tensor]] = []
        def record(mod, args, out, seen=seen):
            seen.append((names[id(mod)], mod, _first_tensor(out)))

        hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
        try:
            with torch.no_grad():
                reset_state(model)
                final = _first_tensor(model(inputs))
        finally:
            for h in hooks:
                h.remove()
        records.append((seen, final))
    for (name, mod, a), (_, _, b) in zip(records[0][0], records[1][0]):
        if a is not None and b is not None and a.dim() and a.shape[0] == 2 and a.shape == b.shape \
                and not torch.equal(a[0], b[0]):
            raise SpikerollError(f"{_label(name, mod)} mixes samples across the batch (sample 0's output changed when "
                                 "sample 1 did); spikeroll runs all members as one batch: make it act per sample")
    a, b = records[0][1], records[1][1]
    if a is not None and a.dim() > out_axis and not torch.equal(a.select(out_axis, 0), b.select(out_axis, 0)):
        raise SpikerollError(f"{_label('', model)} mixes samples across the batch in its forward (sample 0's output "
                             "changed when sample 1 did); spikeroll runs all members as one batch: act per sample")
