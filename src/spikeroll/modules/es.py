"""EGGROLL for any torch.nn.Module, in the style of torch.optim:

    es = spikeroll.EGGROLL(model, population=512, rank=1, sigma=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for frames, labels in loader:
        logits = es.population_forward(frames)          # (N, B, classes), one batch of N·B samples
        es.backward(fitness_of(logits, labels))          # fills every p.grad with −(ES estimate)
        opt.step()

How: for the duration of one population forward, hooks are put on the model (and taken off
after). A Linear/Conv layer's forward hook adds each member's low-rank correction to the output
the layer computed itself (shared input: once for the minibatch, expanded to N·B rows); a
module that holds other trainable parameters (a bias-free neuron's learnable β or threshold)
runs with per-sample values θ ± σE_k swapped in by its pre-hook. Hooks rather than
functional_call or swapping modules: the user's model object, its parameters (held by their
optimizer), its state_dict and its structure never change, every way a layer is reached (a
Sequential, a custom forward, snnTorch's RLeaky calling its own `recurrent` Linear) is covered,
and a layer called twice gets the same perturbation by construction. functional_call would need
a per-member weight matrix (or vmap, which snnTorch's stateful neurons do not survive).

Noise, shaping and the update are spikeroll.es.strategies' (one implementation for every model):
the noise of generation g is a pure function of (seed, g, parameter index, pair), and
`backward` advances g, so a run resumes exactly from (parameters, optimizer state, generation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikeroll.errors import SpikerollError
from spikeroll.es.strategies import EvolutionStrategy, noise_scale, shape_fitness
from spikeroll.modules import checks, neurons
from spikeroll.modules.counting import Counter, countable
from spikeroll.modules.fused import applies as fusable
from spikeroll.modules.layers import (
    LAYERS,
    SharedOutputs,
    combine,
    conv_delta,
    linear_delta,
    matrix_shape,
    per_member_low_rank,
    per_sample,
    shared_low_rank,
)


class _Pass:
    """The state of one population forward over a slice of pairs."""

    def __init__(self, pairs: int, noise: dict[int, tuple], per_member_batch: int | None = None):
        self.pairs, self.members, self.noise = pairs, 2 * pairs, noise
        # B: the first hooked call's leading axis (a shared input), or given when every input is per member
        self.batch: int | None = per_member_batch
        self.per_member = per_member_batch is not None
        self.called: set[int] = set()
        self.swapped: list[tuple[nn.Module, str, nn.Parameter]] = []
        self.cache: dict[tuple[int, int], torch.Tensor] = {}

    def shared(self, name: str, module: nn.Module, x: torch.Tensor) -> bool:
        """Whether x (batch first) is the shared minibatch (B rows) or per member (N·B rows)."""
        if self.batch is None:
            self.batch = x.shape[0]
        allowed = (self.members * self.batch,) if self.per_member else (self.batch, self.members * self.batch)
        if x.dim() == 0 or x.shape[0] not in allowed:
            raise SpikerollError(
                f"module {name!r} ({type(module).__name__}) got an input whose first axis has "
                f"{x.shape[0] if x.dim() else 0} entries, neither the minibatch ({self.batch}) nor the population's "
                f"{self.members}x{self.batch}; call layers with the batch first (once per time step, as snnTorch does)")
        return not self.per_member and x.shape[0] == self.batch


class EGGROLL:
    """Low-rank evolution strategies for a user's nn.Module; rank=None is full-rank OpenAI-ES.

    `chunk_pairs` evaluates the population that many antithetic pairs at a time (bounds memory);
    `check` probes the first forward for modules that mix samples across the batch; `fused` runs
    the population's elementwise work through spikeroll's CPU kernels (modules.fused, and
    modules.neurons for snnTorch's Leaky) where they apply: CPU float32 without autograd.
    """

    def __init__(self, model: nn.Module, population: int = 512, rank: int | None = 1, sigma: float = 0.05,
                 seed: int = 0, shaping: str = "centered_ranks", chunk_pairs: int | None = None,
                 check: bool = True, fused: bool = True):
        checks.check_structure(model)
        if not (math.isfinite(sigma) and sigma > 0):
            raise SpikerollError(f"sigma={sigma} must be > 0; try sigma=0.05")
        self.model, self.sigma, self.shaping, self.chunk_pairs = model, float(sigma), shaping, chunk_pairs
        self.generation, self._probe = 0, check
        self.fused = fused  # fused CPU kernels: shared layers' expansion, snnTorch Leaky (modules.neurons)
        self._fast_neurons = neurons.fast_forwards(model) if fused else {}
        self._fan_outs: dict = {}  # conv fan-out maps of counting (modules.counting), kept across forwards
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # deduplicated, stable order
        self.names, self.params = [n for n, _ in named], [p for _, p in named]
        self._index = {id(p): i for i, p in enumerate(self.params)}
        matrices, self._layers, self._owners = {}, [], []
        for name, m in model.named_modules():
            own = [(k, p) for k, p in m.named_parameters(recurse=False) if p.requires_grad]
            if isinstance(m, LAYERS) and own:
                self._layers.append((name, m))
                if m.weight.requires_grad:
                    matrices[self.names[self._index[id(m.weight)]]] = matrix_shape(m)
            elif own:
                self._owners.append((name, m, own))
        self.strategy = EvolutionStrategy(dict(named), population, rank, seed, matrix_shapes=matrices)

    @property
    def population(self) -> int:
        """Members per generation (N)."""
        return self.strategy.population

    @property
    def rank(self) -> int | None:
        """Rank r of the weight noise; None for full-rank OpenAI-ES."""
        return self.strategy.rank

    # ---- population forward -------------------------------------------------------------
    def population_forward(self, *args, pairs: range | None = None, counts: list | None = None,
                           per_member: bool = False, **kwargs):
        """Run every member (or those of `pairs`) on the same inputs; each output tensor gets a
        leading member axis: (N, ...) with the rest as the model returns it for B samples.
        With `counts` (a list), the members' SynOps are counted at every Linear/Conv call
        (spikeroll.modules.counting) and a `ModuleCounts` of them is appended to it.

        `per_member=True`: the first argument already holds each member's own inputs, (N·B, ...)
        member-major (rows m·B..(m+1)·B are member m's, for the N members of `pairs`), as in
        control, where every member plays its own episodes; every layer then gets N·B rows."""
        pairs = range(self.strategy.pairs) if pairs is None else pairs
        chunk = self.chunk_pairs or len(pairs)
        shared = self.fused and len(pairs) > chunk and not per_member  # no shared product to reuse per member
        memos = [SharedOutputs(m) for _, m in self._layers] if shared else []
        found = None if counts is None else []
        slices = [range(s, min(s + chunk, pairs.stop)) for s in range(pairs.start, pairs.stop, chunk)]
        if per_member:
            batch = _member_batch(args, 2 * len(pairs))
            outs = [self._forward_pairs(part, _member_rows(args, part, pairs, batch), kwargs, memos, found, batch)
                    for part in slices]
        else:
            outs = [self._forward_pairs(part, args, kwargs, memos, found) for part in slices]
        if found:
            counts.append(type(found[0]).cat(found))
        return _tree(lambda *ts: torch.cat(ts), *outs)

    def _scaled_noise(self, pairs: range) -> dict[int, tuple]:
        scale = noise_scale(self.sigma, self.rank)
        noise = {}
        for p, raw in zip(self.params, self.strategy.raw_noise(self.generation, pairs)):
            if len(raw) == 2:
                noise[id(p)] = (raw[0] * scale, raw[1])
            else:
                noise[id(p)] = (raw[0].reshape(len(pairs), *p.shape) * self.sigma,)
        return noise

    def _forward_pairs(self, pairs: range, args, kwargs, memos=(), counts: list | None = None,
                       per_member_batch: int | None = None):
        ctx = _Pass(len(pairs), self._scaled_noise(pairs), per_member_batch)
        before = [(id(p), p._version) for p in self.model.parameters()]
        counter = None if counts is None else Counter(countable(self.model), ctx.members, self._fan_outs)
        handles = [] if counter is None else [m.register_forward_hook(_count_hook(ctx, counter, name))
                                              for name, m in counter.layers]
        handles += [m.register_forward_hook(self._layer_hook(ctx, name)) for name, m in self._layers]
        for name, m, own in self._owners:
            handles.append(m.register_forward_pre_hook(self._owner_pre_hook(ctx, name, own), with_kwargs=True))
            handles.append(m.register_forward_hook(lambda module, *_, ctx=ctx: _restore(ctx, module)))
        replaced = [*self._fast_neurons.items(), *((memo.module, memo) for memo in memos)]
        for memo in memos:  # a layer's shared product, once per population forward (layers.SharedOutputs)
            memo.start_slice(lambda x, ctx=ctx: x.dim() > 0 and x.shape[0] == (ctx.batch or x.shape[0]))
        for m, forward in replaced:
            m.__dict__["forward"] = forward  # an instance attribute shadows the class's forward; removed below
        try:
            with torch.no_grad():
                checks.reset_state(self.model)
                out = self.model(*args, **kwargs)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SpikerollError(f"the module's forward failed in the population forward: {first} (members run as "
                                 "one batch of N·B samples: if the plain forward works, build hidden state from the "
                                 "input's shape, e.g. torch.zeros_like, not from the minibatch size)") from exc
        finally:
            for h in handles:
                h.remove()
            for m, _ in replaced:
                m.__dict__.pop("forward", None)
            _restore(ctx)
        self._check_after(ctx, before)
        axis, out = _split_members(out, ctx.members, ctx.batch)
        if counter is not None:
            counts.append(counter.result())
        if self._probe:
            self._probe = False
            self._check_samples(args, ctx.members * ctx.batch if ctx.per_member else ctx.batch, axis)
        return out

    def _layer_hook(self, ctx: _Pass, name: str):
        def hook(module, args, y):
            x = args[0]
            shared = ctx.shared(name, module, x)
            ctx.called.add(id(module))
            w = ctx.noise.get(id(module.weight))
            b = None if module.bias is None else ctx.noise.get(id(module.bias))
            b = None if b is None else b[0]
            if w is not None and len(w) == 2 and self.fused and fusable(x, y):
                if shared:
                    return shared_low_rank(module, x, y, w, b, ctx.pairs)
                out = per_member_low_rank(module, x, y, w, b, ctx.pairs)
                if out is not None:
                    return out
            if isinstance(module, nn.Linear):
                delta = linear_delta(x, w, b, ctx.pairs, shared, module.out_features)
            else:
                delta = conv_delta(module, x, w, b, ctx.pairs, shared)
            return combine(y, delta, ctx.pairs, shared)
        return hook

    def _owner_pre_hook(self, ctx: _Pass, name: str, own):
        def hook(module, args, kwargs):
            x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.dim()), None)
            if x is None:
                return None
            shared = ctx.shared(name, module, x)
            ctx.called.add(id(module))
            if shared:  # this module is the first to see the minibatch: give every member its copy
                grow = lambda a: a.unsqueeze(0).expand(ctx.members, *a.shape).reshape(-1, *a.shape[1:]) \
                    if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == ctx.batch else a
                args, kwargs = tuple(grow(a) for a in args), {k: grow(v) for k, v in kwargs.items()}
            for key, p in own:
                if p.dim() > x.dim() - 1:
                    raise SpikerollError(f"parameter {name + '.' + key!r} {tuple(p.shape)} has more axes than its "
                                         f"module's per-sample input {tuple(x.shape[1:])}; spikeroll perturbs it "
                                         "elementwise per sample: freeze it with requires_grad_(False)")
                cached = ctx.cache.get((id(p), x.dim()))
                if cached is None:
                    cached = per_sample(p.detach(), ctx.noise[id(p)][0], ctx.batch, x.dim())
                    ctx.cache[(id(p), x.dim())] = cached
                ctx.swapped.append((module, key, p))
                module._parameters[key] = cached  # for this call only; restored by the forward hook
            return args, kwargs
        return hook

    def _check_after(self, ctx: _Pass, before) -> None:
        after = [(id(p), p._version) for p in self.model.parameters()]
        if after != before:
            changed = next((n for (n, p), b in zip(self.model.named_parameters(), before) if (id(p), p._version) != b),
                           "a parameter")
            raise SpikerollError(f"parameter {changed!r} changed during the forward (in place or replaced); every "
                                 "member is evaluated from the same θ: move that update out of forward()")
        for name, m in [(n, m) for n, m in self._layers] + [(n, m) for n, m, _ in self._owners]:
            if id(m) not in ctx.called:
                raise SpikerollError(f"module {name!r} ({type(m).__name__}) holds trainable parameters but was not "
                                     "called during the forward, so it cannot be perturbed; call the module itself "
                                     "(not its weight) or freeze it with requires_grad_(False)")

    def _check_samples(self, args, batch: int, out_axis: int) -> None:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        axes = [] if x is None else [d for d in range(x.dim()) if x.shape[d] == batch]
        if batch >= 2 and len(axes) == 1:  # otherwise the batch axis of the input is ambiguous
            checks.check_per_sample(self.model, x, axes[0], out_axis)

    # ---- the update ---------------------------------------------------------------------
    def backward(self, fitness: torch.Tensor) -> torch.Tensor:
        """Fitness (N,) of the last generation's members (higher is better) -> every p.grad is
        the negated ES estimate of ∇E[fitness]; advances the generation. Returns shaped weights."""
        fitness = torch.as_tensor(fitness).flatten()
        if fitness.numel() != self.population:
            raise SpikerollError(f"fitness has {fitness.numel()} entries for a population of {self.population}; "
                                 "pass one number per member, in the order population_forward returned them")
        weights = shape_fitness(fitness, self.shaping)
        with torch.no_grad():
            grads = self.strategy.gradient(self.generation, weights, self.sigma, self.chunk_pairs)
        for p, g in zip(self.params, grads):
            p.grad = (-g).reshape(p.shape).to(p.dtype)
        self.generation += 1
        return weights

    def state_dict(self) -> dict:
        """What a resumed run needs besides the model and optimiser: generation and σ."""
        return {"generation": self.generation, "sigma": self.sigma}

    def load_state_dict(self, state: dict) -> None:
        """Restore the generation and σ that `state_dict` saved."""
        self.generation, self.sigma = int(state["generation"]), float(state["sigma"])


def _member_batch(args, members: int) -> int:
    """B of a per-member input (N·B, ...): its rows divided among the N members."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[0] % members or not x.shape[0]:
        rows = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() else None
        raise SpikerollError(f"per_member=True takes a first input of N·B rows, member-major, for the {members} "
                             f"members; got {rows} rows")
    return x.shape[0] // members


def _member_rows(args, part: range, pairs: range, batch: int) -> tuple:
    """The arguments with the first input narrowed to the rows of the members of `part` (a slice of `pairs`)."""
    start = 2 * (part.start - pairs.start) * batch
    return (args[0][start : start + 2 * len(part) * batch], *args[1:])


def _count_hook(ctx: _Pass, counter: Counter, name: str):
    """A forward hook that only reads the layer's input: counting changes no computed value."""
    def hook(module, args, y):
        counter.record(module, args[0], ctx.shared(name, module, args[0]))
    return hook


def _restore(ctx: _Pass, only: nn.Module | None = None) -> None:
    """Put the real parameters back: those of `only` when its call ends, else all (an outer
    module's swapped values stay in place while its submodules run)."""
    keep = []
    for module, key, p in reversed(ctx.swapped):
        if only is None or module is only:
            module._parameters[key] = p
        else:
            keep.append((module, key, p))
    ctx.swapped = keep[::-1]


def _tree(fn, *values):
    first = values[0]
    if isinstance(first, torch.Tensor):
        return fn(*values)
    if isinstance(first, (tuple, list)):
        return type(first)(_tree(fn, *items) for items in zip(*values))
    if isinstance(first, dict):
        return {k: _tree(fn, *(v[k] for v in values)) for k in first}
    return first


def _split_members(out, members: int, batch: int | None):
    """Each output tensor's N·B axis -> a leading member axis (N, ..., B, ...)."""
    if batch is None:
        raise SpikerollError("no Linear/Conv layer ran during the forward; the model's weights must be used "
                             "through their modules")
    axes = []

    def split(t: torch.Tensor):
        axis = next((d for d in range(t.dim()) if t.shape[d] == members * batch), None)
        if axis is None:
            return t  # e.g. a parameter-free tensor the model also returns
        axes.append(axis)
        return t.unflatten(axis, (members, batch)).movedim(axis, 0)

    out = _tree(split, out)
    if not axes:
        raise SpikerollError(f"the model's output has no axis of {members}x{batch} (members x minibatch); "
                             "return tensors computed from the input, batch first or after a time axis")
    return axes[0], out
