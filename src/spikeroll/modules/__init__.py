"""Bring your own network: EGGROLL for any torch.nn.Module (snnTorch, Norse, plain torch.nn).
The core never imports snnTorch; it only duck-types `reset_mem()` for module-held state."""

from spikeroll.modules.es import EGGROLL

__all__ = ["EGGROLL"]
