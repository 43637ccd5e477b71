"""Layer 2, diagnosis (beside engine): what a run's Trainer sees before, during and after training - the
pitfalls, the curves, the baselines - and the one `Diagnosis` that the console, result.json, report.html and
`trainer.diagnosis` render. Imports core, data and models, never engine: the Trainer reaches it only through
`diagnose/seam.py` and hands it plain facts (`diagnose/facts.py`). The checks: `diagnose/catalog.py`."""
