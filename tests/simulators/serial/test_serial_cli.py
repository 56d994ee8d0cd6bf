"""``edgecount sim serial`` as a real console program, with the driver as its host."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from drivers.serial import codec as c
from drivers.serial.driver import SerialReader, SerialReaderSettings
from edgecount.backoff import Backoff
from edgecount.cli import main
from simulators.scene import generate_scene

WAIT = 20.0


def write_scene(directory: Path) -> Path:
    path = directory / "scene.json"
    scene = generate_scene(16, antennas=2, seed=4, read_prob=0.5, rounds_per_second=100)
    path.write_text(scene.model_dump_json(), encoding="utf-8")
    return path


@contextmanager
def simulator(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecount", "sim", "serial", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stdout
    assert stream is not None

    def pump() -> None:
        for line in stream:
            lines.put(line.strip())

    threading.Thread(target=pump, name="sim-stdout", daemon=True).start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


async def scan_epcs(url: str) -> set[bytes]:
    settings = SerialReaderSettings(
        "cart", url, command_timeout_seconds=0.5, backoff=Backoff(0.05, 0.2, random.Random(2))
    )
    reader = SerialReader(settings)
    await reader.start()
    try:
        assert reader.connected
        await reader.start_inventory()
        assert await reader.wait_for(lambda h: h.reads >= 300, WAIT)
        await reader.stop_inventory()
        epcs: set[bytes] = set()
        while not reader.queue.empty():
            epcs |= {r.epc for r in reader.queue.get_nowait()}
        assert reader.health().extra["rejected_frames"] > 0  # the faults reached the driver
        return epcs
    finally:
        await reader.stop()


def test_tcp_with_faults_serves_the_driver_until_sigterm(tmp_path: Path) -> None:
    scene_file = write_scene(tmp_path)
    scene = generate_scene(16, antennas=2, seed=4, read_prob=0.5, rounds_per_second=100)
    faults = ["--split", "3", "--garbage", "0.2", "--bad-checksum", "0.05", "--truncate", "0.02"]
    with simulator("--scene", str(scene_file), "--port", "0", *faults) as (proc, lines):
        line = lines.get(timeout=WAIT)
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        epcs = asyncio.run(scan_epcs(f"socket://127.0.0.1:{port}"))
        assert epcs == {bytes.fromhex(t.epc) for t in scene.tags if t.antenna == 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0


def test_pty_with_link_answers_and_cleans_up_on_sigint(tmp_path: Path) -> None:
    link = tmp_path / "ttyUHF0"
    args = ["--scene", str(write_scene(tmp_path)), "--pty", "--pty-link", str(link)]
    with simulator(*args) as (proc, lines):
        pty_line, link_line = lines.get(timeout=WAIT), lines.get(timeout=WAIT)
        assert pty_line.startswith("pty /dev/pts/"), pty_line
        assert link_line == f"link {link}"
        assert os.path.realpath(link) == pty_line.split(" ", 1)[1]
        port = serial.serial_for_url(str(link), timeout=0.2)
        try:
            port.write(c.GetModuleInfo(c.InfoKind.SOFTWARE).encode())
            decoder = c.FrameDecoder()
            frames: list[c.Frame] = []
            for _ in range(50):
                frames += decoder.feed(port.read(64))
                if frames:
                    break
            assert frames == [c.ModuleInfo(1, "V0.1")]
        finally:
            port.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
    assert not link.is_symlink()


def test_bad_scene_exits_2_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("reader:\n  antennas: 2\n  colour: red\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "edgecount", "sim", "serial", "--scene", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:3: reader.colour" in done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--garbage", "1.5"], "--garbage is a probability"),
        (["--split", "-1"], "must not be negative"),
        (["--pty-link", "/tmp/x"], "--pty-link needs --pty"),
        (["--antenna", "3"], "antenna 3 outside 1..2"),
    ],
)
def test_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    scene = write_scene(tmp_path)
    assert main(["sim", "serial", "--scene", str(scene), *options]) == 2
    assert message in capsys.readouterr().err
