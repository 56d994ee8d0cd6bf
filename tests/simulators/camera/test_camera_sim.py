"""The camera simulator: endpoints, MJPEG framing, faults, and ``edgecount sim camera``."""

from __future__ import annotations

import http.client
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edgecount.cli import main
from simulators.camera.server import BOUNDARY, CameraServer, FrameProvider

WAIT = 10.0
Image = npt.NDArray[np.uint8]


def grey_frames(index: int) -> tuple[Image, float | None]:
    """Frame ``index`` is a flat grey of ``10 * index`` with pose ``index / 2``."""
    return np.full((48, 64, 3), (10 * index) % 256, dtype=np.uint8), index / 2


def no_pose(index: int) -> tuple[Image, float | None]:
    return grey_frames(index)[0], None


@contextmanager
def serving(frames: FrameProvider = grey_frames, max_clients: int = 16) -> Iterator[CameraServer]:
    with CameraServer(frames, fps=50.0, max_clients=max_clients) as server:
        yield server


def get(server: CameraServer, path: str, timeout: float = WAIT) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    conn.request("GET", path)
    return conn.getresponse()


def decode(jpeg: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def read_part(response: http.client.HTTPResponse) -> tuple[dict[str, str], bytes]:
    """One part of a multipart MJPEG response: its headers and its JPEG."""
    line = response.readline()
    while line in (b"\r\n", b"\n"):
        line = response.readline()
    assert line == f"--{BOUNDARY}\r\n".encode(), line
    headers: dict[str, str] = {}
    while (line := response.readline()) != b"\r\n":
        name, _, value = line.decode("ascii").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = response.read(int(headers["content-length"]))
    assert response.read(2) == b"\r\n"
    return headers, body


def test_snapshot_carries_the_frame_and_pose_headers() -> None:
    with serving() as server:
        response = get(server, "/snapshot.jpg")
        assert response.status == 200
        assert response.getheader("Content-Type") == "image/jpeg"
        index = int(response.getheader("X-Edgecount-Frame") or "-1")
        assert float(response.getheader("X-Edgecount-Pose") or "nan") == index / 2
        image = decode(response.read())
        assert image.shape == (48, 64, 3)
        assert abs(float(image.mean()) - (10 * index) % 256) < 3
        # counted once the answer is written, which may be just after the client has it
        assert server.wait_for(lambda s: s.snapshots == 1, WAIT)


def test_no_pose_header_when_the_provider_gives_none() -> None:
    with serving(no_pose) as server:
        response = get(server, "/snapshot.jpg")
        assert response.getheader("X-Edgecount-Pose") is None
        assert response.getheader("X-Edgecount-Frame") is not None


def test_stream_sends_one_jpeg_part_per_frame_in_order() -> None:
    with serving() as server:
        response = get(server, "/stream.mjpg")
        assert response.getheader("Content-Type") == (
            f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        )
        parts = [read_part(response) for _ in range(4)]
        indexes = [int(headers["x-edgecount-frame"]) for headers, _ in parts]
        assert indexes == sorted(set(indexes))
        for headers, jpeg in parts:
            assert headers["content-type"] == "image/jpeg"
            assert float(headers["x-edgecount-pose"]) == int(headers["x-edgecount-frame"]) / 2
            assert decode(jpeg).shape == (48, 64, 3)
        response.close()
        assert server.wait_for(lambda s: s.streams == 1 and s.frames_served >= 4, WAIT)


def test_truth_index_and_unknown_paths() -> None:
    with serving() as server:
        assert get(server, "/truth.json").status == 404
        server.truth = {"locations": [{"name": "B01-L1", "count": 3}]}
        response = get(server, "/truth.json")
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read()) == server.truth
        assert b"/stream.mjpg" in get(server, "/").read()
        assert get(server, "/nope").status == 404


def pump_parts(response: http.client.HTTPResponse) -> queue.Queue[dict[str, str] | None]:
    """Parts' headers as a thread reads them; None once the stream ended or failed."""
    parts: queue.Queue[dict[str, str] | None] = queue.Queue()

    def pump() -> None:
        try:
            while True:
                parts.put(read_part(response)[0])
        except (OSError, http.client.HTTPException, AssertionError, ValueError, KeyError):
            parts.put(None)

    threading.Thread(target=pump, name="mjpeg-parts", daemon=True).start()
    return parts


def last_before_quiet(parts: queue.Queue[dict[str, str] | None], last: int) -> int:
    """The last frame index of parts still arriving (in flight) until 0.3 s pass without one."""
    for _ in range(5):
        try:
            part = parts.get(timeout=0.3)
        except queue.Empty:
            return last
        assert part is not None
        last = int(part["x-edgecount-frame"])
    raise AssertionError("the stream went on while stalled")


def test_stall_holds_snapshots_and_streams_until_resume() -> None:
    with serving() as server:
        parts = pump_parts(get(server, "/stream.mjpg"))
        first = parts.get(timeout=WAIT)
        assert first is not None
        server.stall()
        assert server.stalled
        last = last_before_quiet(parts, int(first["x-edgecount-frame"]))
        with pytest.raises(TimeoutError):
            get(server, "/snapshot.jpg", timeout=0.3)
        answered: queue.Queue[int] = queue.Queue()
        waiting = threading.Thread(
            target=lambda: answered.put(get(server, "/snapshot.jpg").status), daemon=True
        )
        waiting.start()
        assert server.wait_for(lambda s: s.clients >= 2, WAIT)
        server.resume()
        assert answered.get(timeout=WAIT) == 200
        after = parts.get(timeout=WAIT)
        assert after is not None
        assert int(after["x-edgecount-frame"]) > last


def test_drop_clients_closes_open_streams() -> None:
    with serving() as server:
        parts = pump_parts(get(server, "/stream.mjpg"))
        assert parts.get(timeout=WAIT) is not None
        assert server.drop_clients() == 1
        while parts.get(timeout=WAIT) is not None:  # parts in flight, then the end
            pass
        assert server.wait_for(lambda s: s.streaming == 0 and s.clients == 0, WAIT)
        assert server.stats.dropped_clients == 1
        assert get(server, "/snapshot.jpg").status == 200  # new clients are served


def test_stop_is_prompt_while_stalled_and_clients_wait() -> None:
    before = set(threading.enumerate())
    server = CameraServer(grey_frames, fps=50).start()
    stream = get(server, "/stream.mjpg")
    read_part(stream)
    server.stall()
    outcome: queue.Queue[str] = queue.Queue()

    def snapshot() -> None:
        try:
            get(server, "/snapshot.jpg").read()
            outcome.put("answered")
        except (OSError, http.client.HTTPException) as exc:
            outcome.put(type(exc).__name__)

    client = threading.Thread(target=snapshot, name="snapshot-client", daemon=True)
    client.start()
    assert server.wait_for(lambda s: s.clients == 2, WAIT)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    assert outcome.get(timeout=WAIT) != "answered"
    client.join(WAIT)
    assert [t.name for t in set(threading.enumerate()) - before] == []  # no thread left


def test_connections_beyond_max_clients_are_refused() -> None:
    with serving(max_clients=1) as server:
        stream = get(server, "/stream.mjpg")
        read_part(stream)
        with pytest.raises((http.client.HTTPException, OSError)):
            get(server, "/snapshot.jpg").read()
        assert server.stats.refused == 1
        stream.close()
        assert server.wait_for(lambda s: s.clients == 0, WAIT)
        assert get(server, "/snapshot.jpg").status == 200


def test_a_failing_frame_is_counted_and_the_camera_goes_on() -> None:
    def flaky(index: int) -> tuple[Image, float | None]:
        if index == 1:
            raise RuntimeError("provider bug")
        return grey_frames(index)

    with serving(flaky) as server:
        stream = get(server, "/stream.mjpg")
        parts = [read_part(stream) for _ in range(3)]
        assert server.stats.render_errors == 1
        assert [int(h["x-edgecount-frame"]) for h, _ in parts] == [0, 2, 3]


# --- the command line -----------------------------------------------------------------------


def stdout_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, read by a thread (so a silent process cannot hang us)."""
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stdout
    assert stream is not None

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, name="sim-stdout", daemon=True).start()
    return lines


@contextmanager
def sim_camera(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecount", "sim", "camera", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = stdout_lines(proc)
        first = lines.get(timeout=WAIT)
        assert first.startswith("listening on 127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        urls = dict(lines.get(timeout=WAIT).split(" ", 1) for _ in range(3))
        assert urls["snapshot"] == f"http://127.0.0.1:{port}/snapshot.jpg"
        assert urls["stream"] == f"http://127.0.0.1:{port}/stream.mjpg"
        yield proc, lines, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


def fetch(port: int, path: str, timeout: float = WAIT) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    return conn.getresponse()


def test_serve_a_fixed_shelf_with_truth_until_sigterm() -> None:
    size = ["--width", "320", "--height", "192", "--levels", "2", "--fps", "20"]
    with sim_camera(*size) as (proc, _lines, port):
        truth = json.loads(fetch(port, "/truth.json").read())
        assert [loc["name"] for loc in truth["locations"]] == [
            "B01-L2",
            "B02-L2",
            "B01-L1",
            "B02-L1",
        ]
        one = fetch(port, "/snapshot.jpg")
        assert one.getheader("X-Edgecount-Pose") is None
        first = decode(one.read())
        assert first.shape == (192, 320, 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0


def test_serve_pan_reports_the_pose_and_stalls_on_cue() -> None:
    args = ["--pan", "--bays", "2", "--width", "320", "--height", "192", "--fps", "20"]
    with sim_camera(*args, "--step", "40", "--stall-after", "0.5") as (proc, lines, port):
        response = fetch(port, "/snapshot.jpg")
        pose = float(response.getheader("X-Edgecount-Pose") or "nan")
        assert 0 <= pose <= 2 * 480 + 2 * 480 - 320  # bays and end walls, less one frame
        assert pose % 40 == 0
        assert json.loads(fetch(port, "/truth.json").read())["pan"]["step"] == 40
        assert lines.get(timeout=WAIT) == "stalled"
        with pytest.raises(TimeoutError):
            fetch(port, "/snapshot.jpg", timeout=0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0


def test_dataset_mode_writes_images_labels_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set"
    args = shlex.split("sim camera dataset --train 2 --val 1 --seed 3 --width 320 --height 192")
    status = main([*args, "--out", str(out)])
    assert status == 0
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    assert printed[-1] == f"data set ready: {out / 'data.yaml'}"
    assert "data set 100% 3/3 images" in captured.err.splitlines()  # not a terminal: lines
    assert "\r" not in captured.err
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 2
    assert len(list((out / "truth" / "val").glob("*.json"))) == 1


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "camera", "serve", "--fps", "0"]) == 2
    assert "--fps" in capsys.readouterr().err
