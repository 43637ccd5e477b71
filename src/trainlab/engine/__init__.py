"""Layer 2, engine: the Trainer (fit -> train_one_epoch -> evaluate), its settings (TrainConfig), losses,
optimizers and schedulers. Imports core and data (the Batches a Trainer iterates), never models."""
