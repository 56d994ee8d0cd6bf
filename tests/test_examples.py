"""The example files shipped under config/ stay valid and in step with their generators."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_gateway_config
from simulators.scene import load_scene
from simulators.shelf import shelf_scene

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_demo_scene_is_the_shelf_generator_output() -> None:
    scene = load_scene(CONFIG / "scenes" / "demo.json")
    generated = shelf_scene(4, 60)
    assert scene.tags == generated.tags
    assert scene.reader == generated.reader
    assert len(scene.epcs) == 240


def test_example_gateway_covers_the_demo_scene_antennas() -> None:
    config = load_gateway_config(CONFIG / "gateway.example.yaml")
    scene = load_scene(CONFIG / "scenes" / "demo.json")
    (reader,) = config.readers
    assert sorted(reader.antennas) == list(range(1, scene.reader.antennas + 1))
