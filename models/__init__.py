"""Vision models: weights, the training and export recipe, and detector backends (issue 4)."""
