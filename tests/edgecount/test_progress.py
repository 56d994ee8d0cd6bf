"""The progress display: plain lines into files and pipes, a live bar only on a terminal."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

from edgecount.progress import Progress

SCRIPT = """
from edgecount.progress import Progress
with Progress("scan A", 100) as shown:
    for done in range(0, 101, 5):
        shown.update_fraction(done / 100, f"{done * 3} reads")
"""


def test_redirected_progress_is_one_line_per_tenth_without_carriage_returns() -> None:
    stream = io.StringIO()
    with Progress("data set", 200, unit="images", stream=stream) as shown:
        for done in range(201):
            shown.update(done)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "data set  10% 20/200 images"
    assert lines[-1] == "data set 100% 200/200 images"
    assert len(lines) == 10


def test_a_redirected_command_writes_no_frames() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert "\r" not in done.stderr
    assert done.stderr.splitlines()[-1] == "scan A 100% 300 reads"


def test_a_terminal_gets_a_live_bar() -> None:
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT], stderr=child, timeout=60, check=True)
        assert proc.returncode == 0
        os.close(child)
        child = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if child >= 0:
            os.close(child)
        os.close(main)
    assert b"\r" in drawn  # redrawn in place
    assert b"scan A" in drawn
    assert b"300 reads" in drawn
