"""User-facing measurement and figures: bench (one generation timed), compare (strategies side by
side), plot (learning curves, spike rasters) and isolate (each measured run in its own process)."""
