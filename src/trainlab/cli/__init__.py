"""Layer 5, the command line: argument parsing (no torch), dispatch to workflows and `use`, the docs generator
and `trainlab doctor`."""
