"""Vision models: weights, the training and export recipe, and detector backends (issue 4)."""

COUNT_CONF = 0.5
"""Default least detection score of a counted item (CLI, evaluation and camera config).

Chosen on a tuning set of simulated shelves (seed 500: exact 96.0 / 96.7 / 96.3 % of locations
at 0.4 / 0.5 / 0.6), apart from the held-out set the benchmark reports (seed 1000). Kept here,
free of imports, so the gateway configuration can use it without loading OpenCV or ONNX
Runtime."""

TRAIN_EXTRA = "pip install 'edgecount[train]'"
"""How to install what training, export and the ultralytics back-end need."""
