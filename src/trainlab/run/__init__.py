"""Layer 3, run: the whole config (data + model + train + tune + seed) and the run directory it trains into.
Imports core, data, models and engine."""
