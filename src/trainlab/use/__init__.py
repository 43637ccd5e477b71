"""Layer 4, use of a trained model: load a run, evaluate, predict, export and serve. Imports every layer below;
never the CLI or workflows."""
