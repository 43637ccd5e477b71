"""Layer 4, workflows: train, K-fold CV, tuning and the learning-rate finder, each a loop over Trainer.fit.
Imports every layer below; never the CLI or `use`."""
