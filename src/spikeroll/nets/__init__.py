"""The networks ES evaluates: float LIF networks (`model`), their fused CPU kernel (`kernels`),
and integer networks with Loihi's arithmetic (`integer`, `loihi`, `quant`)."""
