"""Exact spike and synaptic-operation (SynOp) counts of a forward pass (docs/energy.md).

A SynOp is one event delivered to one synapse: every spike, input events included, times the number
of synapses it drives (its fan-out: the next layer's width; the last hidden layer drives the
readout). Per inference (one sample's T bins):

    synops        = input_events·sizes[1] + Σ_i spikes_i·sizes[i + 2]
    synops_hidden = Σ_i spikes_i·sizes[i + 2]       (the network's own spikes: what training controls)
    rate_layer{i} = spikes_i / (sizes[i + 1]·T·samples)

Input events: the frames hold event counts per pixel and bin, so an input value v counts as v events
(Σ|v| over the frames as given, before any pooling: for binary frames the number of nonzero
entries; pooling only merges pixels, the events stay the same). The integer
network counts the chip's own messages: its sum-pooled input enters as graded spikes, one message
per nonzero entry (see `spikeroll.nets.integer`).

Not counted: the readout's own spikes (readout="spikes": they drive no synapse), bias additions and
the membrane updates.

A user's module (`--model`, `spikeroll.modules`) is counted at its Linear/Conv calls instead
(`ModuleCounts`, recorded by `spikeroll.modules.counting`): each integer-valued input entry x
counts |x| events times the synapses it drives (a Linear's out_features; a conv's (output
position, output channel) pairs that reach it). Layers called with non-integer input (an analog
current) carry no events and are left out (`ModuleCounts.uncounted`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class Counts:
    """What both kinds of counts share: the interface the objectives and the metrics read
    (members, synops_hidden, synops_input, reference, per_member, rates)."""

    def synops(self) -> torch.Tensor:
        """SynOps per inference, input events included, per member (N,) float64."""
        return self.synops_hidden() + self.synops_input()

    def summary(self, prefix: str = "") -> dict[str, float]:
        """The members' means as flat numeric metrics: synops, synops_hidden, rate_layer{i}."""
        values = self.per_member()
        keys = ["synops", "synops_hidden", *(f"rate_layer{i}" for i in range(len(self.rates())))]
        return {f"{prefix}{k}": float(values[k].mean()) for k in keys}

    def nbytes(self) -> int:
        """Bytes of the per-member tensors: what a Ray worker sends back with a unit's fitness."""
        lists = [v for v in vars(self).values() if isinstance(v, list)]
        return sum(t.nbytes for values in lists for t in values if isinstance(t, torch.Tensor))


@dataclass
class SpikeCounts(Counts):
    """Counts of one forward over a minibatch, per population member.

    input_events  total input events of the minibatch (shared by every member)
    spikes        per hidden (spiking, non-readout) layer: total spikes (N,) float64 over the minibatch
    sizes         layer widths, input first; time_bins T; samples B
    """

    input_events: float
    spikes: list[torch.Tensor]
    sizes: list[int]
    time_bins: int
    samples: int

    @staticmethod
    def cat(parts: list[SpikeCounts]) -> SpikeCounts:
        """The counts of consecutive member chunks as one (members concatenated)."""
        first = parts[0]
        spikes = [torch.cat([p.spikes[i] for p in parts]) for i in range(len(first.spikes))]
        return SpikeCounts(first.input_events, spikes, first.sizes, first.time_bins, first.samples)

    @staticmethod
    def merge_samples(parts: list[SpikeCounts]) -> SpikeCounts:
        """The counts of consecutive minibatches of the same members as one (samples added up)."""
        first = parts[0]
        spikes = [sum(p.spikes[i] for p in parts) for i in range(len(first.spikes))]
        return SpikeCounts(sum(p.input_events for p in parts), spikes, first.sizes, first.time_bins,
                           sum(p.samples for p in parts))

    @property
    def members(self) -> int:
        """N, the members counted."""
        return len(self.spikes[0]) if self.spikes else 1

    def synops_hidden(self) -> torch.Tensor:
        """SynOps per inference of the network's own spikes, per member (N,) float64."""
        total = torch.zeros(self.members, dtype=torch.float64)
        for i, s in enumerate(self.spikes):
            total = total + s.double() * self.sizes[i + 2]
        return total / self.samples

    def synops_input(self) -> float:
        """SynOps per inference of the input events (the same for every member)."""
        return self.input_events * self.sizes[1] / self.samples

    def reference(self) -> float:
        """The synops objective's reference: the all-firing SynOps per inference of the architecture."""
        return all_firing_synops(self.sizes, self.time_bins)

    def rates(self) -> list[torch.Tensor]:
        """Firing rate of each hidden layer per member: spikes / (neurons·T·samples), (N,) float64."""
        return [s.double() / (self.sizes[i + 1] * self.time_bins * self.samples) for i, s in enumerate(self.spikes)]

    def per_member(self) -> dict[str, torch.Tensor]:
        """synops, synops_hidden, synops_layer{i} (i = 0: the input) and rate_layer{i}, each (N,)
        float64: what a fitness function receives."""
        n = self.members
        out = {"synops": self.synops(), "synops_hidden": self.synops_hidden(),
               "synops_layer0": torch.full((n,), self.synops_input(), dtype=torch.float64)}
        for i, s in enumerate(self.spikes):
            out[f"synops_layer{i + 1}"] = s.double() * self.sizes[i + 2] / self.samples
        for i, rate in enumerate(self.rates()):
            out[f"rate_layer{i}"] = rate
        return out



@dataclass
class ModuleCounts(Counts):
    """Counts of a user's module's forward over a minibatch, per population member: one entry per
    Linear/Conv layer the forward called, in the model's order (`spikeroll.modules.counting`).

    names          the layers' names in the model
    shared_synops  SynOps of its calls whose input was the shared minibatch (the same for every
                   member and not changed by training: the input's SynOps)
    member_synops  SynOps of its calls with a per-member input (the network's own spikes), (N,) float64
    events         Σ x over its input entries and calls, (N,) float64; entries: their number per member
    capacity       the SynOps if every input entry of every call were 1 (the objective's reference)
    integer        whether every call's input was integer-valued: False for an analog current, which
                   carries no events, so the layer is left out of every count (`uncounted`)
    samples        B; every total above is over the minibatch, the methods give them per inference
    """

    names: list[str]
    shared_synops: list[float]
    member_synops: list[torch.Tensor]
    events: list[torch.Tensor]
    entries: list[int]
    capacity: list[float]
    integer: list[bool]
    samples: int

    @staticmethod
    def cat(parts: list[ModuleCounts]) -> ModuleCounts:
        """The counts of consecutive member chunks as one (members concatenated)."""
        first = parts[0]
        joined = [[torch.cat(t) for t in zip(*(getattr(p, key) for p in parts))]
                  for key in ("member_synops", "events")]
        integer = [all(flags) for flags in zip(*(p.integer for p in parts))]
        return ModuleCounts(first.names, first.shared_synops, *joined, first.entries, first.capacity, integer,
                            first.samples)

    @staticmethod
    def merge_samples(parts: list[ModuleCounts]) -> ModuleCounts:
        """The counts of consecutive minibatches of the same members as one (samples added up)."""
        first = parts[0]
        summed = [[sum(values) for values in zip(*(getattr(p, key) for p in parts))]
                  for key in ("shared_synops", "member_synops", "events", "entries", "capacity")]
        integer = [all(flags) for flags in zip(*(p.integer for p in parts))]
        return ModuleCounts(first.names, *summed, integer, sum(p.samples for p in parts))

    @property
    def members(self) -> int:
        """N, the members counted."""
        return len(self.events[0]) if self.events else 1

    def counted(self) -> list[int]:
        """Indices of the layers whose input carried events (integer-valued in every call)."""
        return [i for i, ok in enumerate(self.integer) if ok]

    def uncounted(self) -> list[str]:
        """Names of the layers left out: called with non-integer input (an analog current)."""
        return [name for name, ok in zip(self.names, self.integer) if not ok]

    def synops_hidden(self) -> torch.Tensor:
        """SynOps per inference of the network's own spikes (per-member inputs), per member (N,) float64."""
        total = torch.zeros(self.members, dtype=torch.float64)
        for i in self.counted():
            total = total + self.member_synops[i]
        return total / self.samples

    def synops_input(self) -> float:
        """SynOps per inference of the shared minibatch's events (the same for every member)."""
        return sum(self.shared_synops[i] for i in self.counted()) / self.samples

    def reference(self) -> float:
        """The synops objective's reference: the SynOps per inference if every input entry of every
        counted call were 1 (for the built-in network's widths, `all_firing_synops`)."""
        return sum(self.capacity[i] for i in self.counted()) / self.samples

    def rates(self) -> list[torch.Tensor]:
        """Per counted layer, the mean of its input over entries and calls, per member (N,) float64."""
        return [self.events[i] / self.entries[i] for i in self.counted()]

    def per_member(self) -> dict[str, torch.Tensor]:
        """synops, synops_hidden, and per counted layer i (in the model's order) synops_layer{i} (the
        SynOps of the events entering it) and rate_layer{i}, each (N,) float64."""
        out = {"synops": self.synops(), "synops_hidden": self.synops_hidden()}
        for j, i in enumerate(self.counted()):
            out[f"synops_layer{j}"] = (self.member_synops[i] + self.shared_synops[i]) / self.samples
        for j, rate in enumerate(self.rates()):
            out[f"rate_layer{j}"] = rate
        return out


def bin_events(frames: torch.Tensor) -> torch.Tensor:
    """Input events per sample and time bin, (B, T) float64: Σ|v| over each bin of frames (B, T, ...)
    as given (what a chip that stops after bin t has read: the early objective and early exit)."""
    x = frames.detach().flatten(2)
    signed = x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)
    # summed in the frames' own dtype (integers widen to int64; float32 holds any bin's count
    # exactly), then converted: a float64 sum converts every element first (~25x slower)
    return (x.abs() if signed else x).sum(2).to(torch.float64)


def all_firing_synops(sizes: list[int], time_bins: int) -> float:
    """SynOps per inference of a network in which every input and neuron fires once in every bin
    (one event per input pixel and bin): Σ_l sizes[l]·sizes[l + 1]·T over the synapse layers.
    The reference the synops objective divides by, so that its weight reads the same across
    networks and does not depend on the run's state."""
    return float(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * time_bins)
