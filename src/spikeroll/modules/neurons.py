"""Fast forwards for neuron modules spikeroll recognises, used only inside a population forward.

snnTorch's `Leaky` makes about ten passes over the population's N·B rows per step; `FastLeaky`
makes one (modules.fused.leaky_step) and reproduces it bit for bit: the same spikes and membrane,
returned as snnTorch returns them and left on the module as `mem`. (snnTorch's `reset` attribute,
the step's reset mask that it recomputes from `mem` at every step, is not written.) It is used only
where that can be guaranteed: the exact class snntorch.Leaky (a subclass may change anything),
no inhibition, no state quantisation, the default reset delay, scalar β/threshold/graded factor
that are not being trained (trained ones are perturbed per sample), and CPU float32 inputs.
The spike function must be snnTorch's Heaviside forward (every surrogate's): it is checked on
fixed values once, and the first real call of each neuron runs both forwards and compares them;
any difference and that neuron keeps its own forward from then on. Nothing is imported from
snnTorch: the class is recognised by name.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeroll.modules import fused

MODES = (0, 1, 2)  # snnTorch's reset_mechanism_val (subtract, zero, none), which fused.leaky_step takes as is
SCALARS = ("beta", "threshold", "graded_spikes_factor")


def _is_snntorch_leaky(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__name__ == "Leaky" and cls.__module__.startswith("snntorch")


def _scalars(module: nn.Module) -> bool:
    """Whether β, threshold and graded factor are single numbers that are not being trained."""
    values = [getattr(module, name, None) for name in SCALARS]  # snnTorch attributes, absent on others
    return all(isinstance(v, torch.Tensor) and v.numel() == 1 and not v.requires_grad for v in values)


def _mode(module: nn.Module) -> int | None:
    value = getattr(module, "reset_mechanism_val", None)  # an snnTorch attribute (a 0-d tensor), maybe absent
    try:
        return int(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _heaviside_spikes(spike_fn) -> bool:
    probe = torch.tensor([-2.0, -1.0, -1e-38, -1e-45, -0.0, 0.0, 1e-45, 1e-38, 0.25, 1.0, 3.0])
    probe = torch.cat([probe, torch.linspace(-3, 3, 997)])
    try:
        with torch.no_grad():
            out = spike_fn(probe.clone())
    except Exception:  # any failure: not the function we know
        return False
    return isinstance(out, torch.Tensor) and out.dtype == probe.dtype and torch.equal(out, (probe > 0).to(probe.dtype))


class FastLeaky:
    """The replacement forward for one snnTorch Leaky: `module.forward = FastLeaky(module)` for
    the duration of a population forward (modules.es), the module's own forward otherwise.

    The step is snnTorch's (`fused.leaky_step`): r = H(mem − θ); mem <- β·mem + I − r·θ
    (subtract reset; zero reset: β·(1 − r)·mem + I); s = H(mem − θ)·graded."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.verified = False  # set after the first call matched snnTorch's own forward bit for bit
        self.disabled = False

    @classmethod
    def eligible(cls, module: nn.Module) -> bool:
        """Whether `module` is an snnTorch Leaky that FastLeaky reproduces bit for bit (see the
        module docstring)."""
        if not (_is_snntorch_leaky(module) and fused.kernels.available()):
            return False
        # snnTorch attributes, which a version of snnTorch may lack: absent counts as not simple
        simple = (not getattr(module, "inhibition", True) and not getattr(module, "state_quant", True)
                  and getattr(module, "reset_delay", False) is True
                  and _mode(module) in MODES)
        return simple and _scalars(module) and _heaviside_spikes(module.spike_grad)

    def own_forward(self, *args, **kwargs):
        """The module's own (snnTorch's) forward."""
        return type(self.module).forward(self.module, *args, **kwargs)

    def __call__(self, input_, mem=None):
        """One step of the Leaky, as snnTorch's forward: (spikes, mem) or spikes."""
        m = self.module
        state = m.mem if mem is None else mem
        tensors = isinstance(input_, torch.Tensor) and isinstance(state, torch.Tensor)
        if self.disabled or not tensors or not _scalars(m) or (m.init_hidden and mem is not None) \
                or not fused.applies(input_, state):
            return self.own_forward(input_, mem)
        if not self.verified:
            return self._first_call(input_, mem)
        return self._fast(input_, mem)

    def _fast(self, input_, mem):
        m = self.module
        if mem is not None:
            m.mem = mem
        state = m.mem if m.mem.shape == input_.shape else None  # None: from rest, as snnTorch's zeros_like
        beta = float(m.beta.clamp(0, 1))
        m.mem, spikes = fused.leaky_step(input_, state, beta, float(m.threshold), float(m.graded_spikes_factor),
                                         _mode(m))
        if m.output or not m.init_hidden:
            return spikes, m.mem
        return spikes

    def _first_call(self, input_, mem):
        """Run snnTorch's forward and ours from the same state; keep ours only if every output
        and the membrane left behind are the same bits."""
        m = self.module
        before = m.mem
        theirs = self.own_forward(input_, mem)
        their_mem = m.mem
        m.mem = before
        ours = self._fast(input_, mem)
        flat = lambda out: out if isinstance(out, tuple) else (out,)  # noqa: E731
        same = len(flat(theirs)) == len(flat(ours)) and all(
            torch.equal(a, b) for a, b in zip((*flat(theirs), their_mem), (*flat(ours), m.mem)))
        self.verified, self.disabled = same, not same
        if not same:
            m.mem = their_mem
            return theirs
        return ours


def fast_forwards(model: nn.Module) -> dict[nn.Module, FastLeaky]:
    """A FastLeaky for every neuron of `model` that can take one."""
    return {m: FastLeaky(m) for m in model.modules() if FastLeaky.eligible(m)}
