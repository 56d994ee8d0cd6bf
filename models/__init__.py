"""Vision models: weights, the training and export recipe, and detector backends (issue 4)."""

COUNT_CONF = 0.4
"""Default least detection score of a counted item (CLI, evaluation and camera config).

Chosen on the held-out simulated shelves (docs/benchmarks.md). Kept here, free of imports, so
the gateway configuration can use it without loading OpenCV or ONNX Runtime."""
