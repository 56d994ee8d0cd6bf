"""Fixtures of the gateway's command-line tests: the LLRP simulator as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.shelf import shelf_scene

EDGECOUNT = [sys.executable, "-m", "edgecount"]
ENV = os.environ | {"PYTHONUNBUFFERED": "1"}


@pytest.fixture
def scene_file(tmp_path: Path) -> Path:
    path = tmp_path / "scene.json"
    path.write_text(shelf_scene(3, 40).model_dump_json())
    return path


def start_simulator(scene: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    sim = subprocess.Popen(
        [*EDGECOUNT, "sim", "llrp", "--scene", str(scene), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert sim.stdout is not None
    line = sim.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line + (
        sim.stderr.read() if sim.stderr else ""
    )
    return sim, int(line.rsplit(":", 1)[1])


@pytest.fixture
def simulator(scene_file: Path) -> Iterator[Callable[..., int]]:
    """Start ``edgecount sim llrp`` on the scene with extra flags; returns its port."""
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> int:
        process, port = start_simulator(scene_file, *extra)
        started.append(process)
        return port

    yield start
    for process in started:
        process.terminate()
        assert process.wait(10) == 0
