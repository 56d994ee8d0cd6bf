"""``password_file: credential:NAME`` reads systemd's ``$CREDENTIALS_DIRECTORY/NAME``."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecount.settings import MqttConfig
from edgecount.yamlcfg import ConfigError
from gateway.config import load_gateway_config

CONFIG = """\
site: s1
gateway_id: gw1
mqtt:
  username: gw1
  password_file: credential:mqtt-password
zones:
  A: {cameras: [c]}
cameras:
  - name: c
    url: usb:0
    rois: [{location: A-1, polygon: [[0, 0], [1, 0], [1, 1]], sku: X}]
"""


def test_credential_resolves_in_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    config = load_gateway_config(path)
    assert config.mqtt.password_file == tmp_path / "creds" / "mqtt-password"


def test_credential_without_the_directory_is_a_config_error_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    text = str(caught.value)
    assert "CREDENTIALS_DIRECTORY" in text
    assert ":5" in text  # the line of password_file


@pytest.mark.parametrize("name", ["../etc/shadow", "a/b", "", ".."])
def test_credential_names_cannot_leave_the_directory(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x.service")
    with pytest.raises(ValueError, match="credential name"):
        MqttConfig.model_validate({"password_file": f"credential:{name}"})


def test_plain_paths_stay_relative_to_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x.service")
    config = MqttConfig.model_validate(
        {"password_file": "secrets/pw"}, context={"base_dir": "/etc/edgecount"}
    )
    assert config.password_file == Path("/etc/edgecount/secrets/pw")
