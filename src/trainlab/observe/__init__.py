"""Layer 3, observation: diagnoses, plots, TensorBoard, the HTML report and run comparison tables.
Imports core, data and engine."""
