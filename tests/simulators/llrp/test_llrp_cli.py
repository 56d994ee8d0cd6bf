"""``edgecount sim llrp`` as a real console program."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drivers.llrp import codec as c
from simulators.llrp.replay import load_replay
from simulators.scene import generate_scene

WAIT = 20.0
SIM = [sys.executable, "-m", "edgecount", "sim", "llrp"]


def write_scene(directory: Path) -> Path:
    path = directory / "scene.json"
    path.write_text(generate_scene(20, antennas=2, seed=1, rounds_per_second=50).model_dump_json())
    return path


def stdout_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, read by a thread (so a silent process cannot hang us)."""
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stdout
    assert stream is not None

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, name="sim-stdout", daemon=True).start()
    return lines


@contextmanager
def simulator(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecount", "sim", "llrp", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        count = int(args[args.index("--readers") + 1]) if "--readers" in args else 1
        out = stdout_lines(proc)
        lines = [out.get(timeout=WAIT) for _ in range(count)]
        assert all(line.startswith("listening on 127.0.0.1:") for line in lines), lines
        yield proc, [int(line.rsplit(":", 1)[1]) for line in lines]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


def greeting(port: int) -> tuple[c.Message, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    frames = c.FrameBuffer()
    while not (found := frames.feed(sock.recv(4096))):
        pass
    return c.decode_message(found[0]), sock


def test_serves_several_readers_until_sigterm(tmp_path: Path) -> None:
    with simulator("--scene", str(write_scene(tmp_path)), "--readers", "2") as (proc, ports):
        assert len(set(ports)) == 2
        for port in ports:
            message, sock = greeting(port)
            assert isinstance(message, c.ReaderEventNotification)
            assert message.data.connection_attempt == c.ConnectionAttemptStatus.SUCCESS
            sock.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0


def test_fault_flag_drops_the_connection(tmp_path: Path) -> None:
    with simulator("--scene", str(write_scene(tmp_path)), "--drop-after", "0.05") as (proc, ports):
        message, sock = greeting(ports[0])
        assert isinstance(message, c.ReaderEventNotification)
        while data := sock.recv(4096):  # the reader sends nothing more; then EOF
            assert data is not None
        sock.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0


def test_bad_scene_exits_2_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("reader:\n  antennas: 2\n  colour: red\n")
    done = subprocess.run(
        [sys.executable, "-m", "edgecount", "sim", "llrp", "--scene", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:3: reader.colour" in done.stderr


def test_write_replay_then_serve_it(tmp_path: Path) -> None:
    scene = write_scene(tmp_path)
    replay = tmp_path / "stream.llrp"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecount",
            "sim",
            "llrp",
            "--scene",
            str(scene),
            "--write-replay",
            str(replay),
            "--replay-reports",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert "wrote 7 reports" in made.stdout
    assert len(load_replay(replay)) == 7
    replay.write_bytes(b"not llrp at all")
    done = subprocess.run(
        [*SIM, "--scene", str(scene), "--replay", str(replay), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid replay file" in done.stderr
