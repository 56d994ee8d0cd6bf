"""The gateway's ``outbox:`` section: its keys reach the outbox and the MQTT publisher."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecount.yamlcfg import ConfigError
from gateway.config import load_gateway_config
from gateway.outbox import DEFAULT_MAX_ROWS
from gateway.runtime import open_publisher

BASE = """\
site: dc1
gateway_id: gw-01
state_dir: state
readers:
  - type: llrp
    name: dock-a
    host: 10.0.0.5
    antennas: {1: A-01}
zones:
  A:
    readers: [dock-a]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    return [str(issue) for issue in caught.value.issues]


async def test_outbox_keys_reach_the_outbox_and_the_publisher(tmp_path: Path) -> None:
    section = (
        "outbox:\n  max_rows: 500\n  max_inflight: 4\n"
        "  reconnect_min_seconds: 0.2\n  reconnect_max_seconds: 5\n"
    )
    config = load_gateway_config(write(tmp_path, BASE + section))
    async with open_publisher(config, start=False) as publisher:
        assert publisher.outbox.max_rows == 500
        assert publisher.settings.max_inflight == 4
        assert publisher.settings.reconnect_min_delay == 0.2
        assert publisher.settings.reconnect_max_delay == 5.0
        assert publisher.outbox.path == tmp_path / "state" / "outbox.sqlite3"


async def test_without_the_section_the_defaults_apply(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, BASE))
    async with open_publisher(config, start=False) as publisher:
        assert publisher.outbox.max_rows == DEFAULT_MAX_ROWS
        assert publisher.settings.max_inflight == 20
        assert publisher.settings.reconnect_min_delay == 0.5
        assert publisher.settings.reconnect_max_delay == 60.0


def test_outbox_mistakes_name_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "outbox:\n  max_row: 10\n  max_inflight: 0\n")
    issues = issues_of(path)
    assert f"{path}:13: outbox.max_row: unknown key (not allowed here)" in issues
    assert any(issue.startswith(f"{path}:14: outbox.max_inflight:") for issue in issues)
    path = write(
        tmp_path, BASE + "outbox:\n  reconnect_min_seconds: 10\n  reconnect_max_seconds: 1\n"
    )
    assert any("reconnect_min_seconds must not exceed" in issue for issue in issues_of(path))
