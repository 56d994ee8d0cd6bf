"""The model card ``edgecount models finetune`` writes next to the fine-tuned detector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _row(name: str, key: str, figures: dict[str, Any], fmt: str) -> str:
    int8, float_ = format(figures["int8"][key], fmt), format(figures["float"][key], fmt)
    return f"| {name} | {int8} | {float_} |"


def model_card(summary: dict[str, Any]) -> str:
    """Markdown: the files, the data, the settings, the figures on the val split, the command."""
    figures = summary["figures"]
    images = summary["images"]
    scored = figures["int8"]
    names = ", ".join(f"{k}: {v}" for k, v in sorted(summary["names"].items()))
    recipe = json.dumps(summary["recipe"], indent=2, sort_keys=True)
    return f"""# Model card: fine-tuned shelf detector

Fine-tuned from `{Path(summary["start"]).name}` on a site's own labelled shelves by
`edgecount models finetune`.

| file | what |
|---|---|
| `detector.onnx` | float ONNX: `vision count --model detector.onnx`, or a camera's `model:` |
| `detector.int8.onnx` | the same, quantised to INT8 (calibrated on the site's training images) |
| `finetune.json` | these figures and settings as JSON |

## Data

{images["train"]} training and {images["val"]} validation images; classes ({names}) all
count as one class, `item`.

## Figures on the val split

{scored["images"]} images, {scored["locations"]} locations counted (an image is one location
unless the simulator's truth lies beside it), counted at score 0.5:

| figure | INT8 | float |
|---|---|---|
{_row("locations counted exactly", "exact_rate", figures, ".1%")}
{_row("mean absolute error per location", "mae", figures, ".3f")}
{_row("mean relative error", "mean_relative_error", figures, ".2%")}

mAP50 (ultralytics' validation of the fine-tuned weights): {figures["mAP50"]:.3f}.

The val split also picked the best epoch, so these figures lean optimistic: count shelves
that neither split holds (`edgecount vision count --model detector.onnx`) before deploying.

Training took {summary["train_seconds"]:.0f} s; the whole command {summary["total_seconds"]:.0f} s.

## Command

```console
{summary["command"]}
```

Settings:

```json
{recipe}
```
"""
