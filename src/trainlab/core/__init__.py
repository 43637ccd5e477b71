"""Layer 0, core: errors, registries, the typed-config machinery, config files, JSON files, metrics,
checkpoints, device selection and distributed helpers. Imports nothing else of trainlab."""
