"""Opening serial links by URL: loopback, sockets, ptys, and how failures surface."""

from __future__ import annotations

import os
import socket
import threading
import tty

import pytest

from drivers.serial import codec as c
from drivers.serial.transport import TransportError, open_link


def read_until(link_read: object, size: int) -> bytes:
    assert callable(link_read)
    data = b""
    for _ in range(100):
        data += link_read()
        if len(data) >= size:
            break
    return data


def test_loopback_carries_frames_both_ways() -> None:
    link = open_link("loop://", read_timeout=0.05)
    try:
        frame = c.MultiPoll(10000).encode()
        link.write(frame)
        assert c.FrameDecoder().feed(read_until(link.read_some, len(frame))) == [c.MultiPoll(10000)]
        assert link.read_some() == b""  # nothing more: the read timed out
    finally:
        link.close()
        link.close()  # idempotent


def test_pty_path_opens_like_a_device() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = open_link(os.ttyname(slave), read_timeout=0.05)
    try:
        os.write(master, c.Ack(0x28).encode())
        assert c.FrameDecoder().feed(read_until(link.read_some, 8)) == [c.Ack(0x28)]
        link.write(c.StopMultiPoll().encode())
        assert os.read(master, 64) == c.StopMultiPoll().encode()
        os.close(master)
        with pytest.raises(TransportError):
            read_until(link.read_some, 1)
    finally:
        link.close()
        os.close(slave)


def test_socket_eof_is_a_transport_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        thread.start()
        link = open_link(f"socket://127.0.0.1:{port}", read_timeout=0.05)
        thread.join(5)
        accepted[0].sendall(c.GetPower().encode())
        assert read_until(link.read_some, 7) == c.GetPower().encode()
        accepted[0].close()
        with pytest.raises(TransportError, match="read failed"):
            read_until(link.read_some, 1)
        link.close()


@pytest.mark.parametrize("url", ["socket://127.0.0.1:9", "/dev/nonexistent-tty", "bogus://x"])
def test_unopenable_ports_raise_transport_error(url: str) -> None:
    with pytest.raises(TransportError, match="cannot open"):
        open_link(url)
