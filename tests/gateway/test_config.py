"""The gateway configuration: valid files load, every mistake names file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgecount.yamlcfg import ConfigError
from gateway.config import LlrpReaderConfig, load_gateway_config
from gateway.readers import llrp_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "gateway.example.yaml"

VALID = """\
site: dc1
gateway_id: gw-01
state_dir: state
mqtt:
  host: broker.local
  protocol: "3.1.1"
readers:
  - type: llrp
    name: dock-a
    host: 10.0.0.5
    antennas: {1: A-01, 2: A-02, 3: A-02}
zones:
  A:
    readers: [dock-a]
    scan_seconds: 12
    schedule: "0 2 * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    return [str(issue) for issue in caught.value.issues]


def test_valid_file_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, VALID))
    assert config.mqtt.port == 1883
    assert config.mqtt.protocol == "3.1.1"
    assert config.state_dir == tmp_path / "state"
    assert config.zones["A"].min_reads == 2
    # antennas 2 and 3 are aliases of one location
    assert config.zone_locations("A") == ["A-01", "A-02"]


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("    host: 10.0.0.5\n", "    host: 10.0.0.5\n    tx_powr: 30\n")
    )
    assert issues_of(path) == [f"{path}:11: readers[0].tx_powr: unknown key (not allowed here)"]


def test_llrp_overflow_defaults_to_block_and_reaches_the_driver(tmp_path: Path) -> None:
    def overflow_of(text: str) -> str:
        reader = load_gateway_config(write(tmp_path, text)).reader("dock-a")
        assert isinstance(reader, LlrpReaderConfig)
        return llrp_settings(reader).overflow

    assert overflow_of(VALID) == "block"
    with_key = VALID.replace("    host: 10.0.0.5\n", "    host: 10.0.0.5\n    overflow: drop\n")
    assert overflow_of(with_key) == "drop"
    path = write(tmp_path, with_key.replace("overflow: drop", "overflow: wait"))
    assert issues_of(path) == [f"{path}:11: readers[0].overflow: Input should be 'block' or 'drop'"]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        VALID.replace('protocol: "3.1.1"', "protocol: 4")
        .replace("scan_seconds: 12", "scan_seconds: -1")
        .replace('"0 2 * * *"', '"every night"')
    )
    found = issues_of(write(tmp_path, text))
    assert len(found) == 3
    assert found[0].endswith(":6: mqtt.protocol: Input should be '5' or '3.1.1'")
    assert ":15: zones.A.scan_seconds:" in found[1]
    assert ":16: zones.A.schedule:" in found[2]
    assert "cron" in found[2]


def test_reader_type_is_checked(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, VALID.replace("type: llrp", "type: modbus")))
    assert any(":8: readers[0].type:" in issue for issue in found)


def test_zone_must_name_known_readers(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("readers: [dock-a]", "readers: [dock-b]"))
    assert issues_of(path) == [
        f"{path}:14: zones.A.readers[0]: unknown reader 'dock-b' (known: dock-a)"
    ]


def test_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, VALID.replace("gateway_id: gw-01\n", "")))
    assert found == [f"{tmp_path / 'gateway.yaml'}:None: gateway_id: required key is missing"] or (
        found[0].endswith("gateway_id: required key is missing")
    )
    broken = issues_of(write(tmp_path, "site: [unclosed\n"))
    assert "invalid YAML" in broken[0]
    assert ":2:" in broken[0] or ":1:" in broken[0]


def test_topic_unsafe_names_are_rejected(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, VALID.replace("A-02, 3: A-02", "A/02, 3: A-02")))
    assert any("readers[0].antennas[2]: 'A/02' is not valid: use 1-64" in issue for issue in found)


def test_example_config_is_valid() -> None:
    config = load_gateway_config(EXAMPLE)
    assert config.zones


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecount", *args], capture_output=True, text=True, check=False
    )


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    good = run_cli("gateway", "validate", "-c", str(EXAMPLE))
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout
    bad_path = write(tmp_path, VALID.replace("site: dc1", "site: dc1\nsyte: dc2"))
    bad = run_cli("gateway", "validate", "-c", str(bad_path))
    assert bad.returncode == 2
    assert f"{bad_path}:2: syte: unknown key" in bad.stderr


def test_camera_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "site: s\n"
        "gateway_id: g\n"
        "cameras:\n"
        "  - name: cam-1\n"
        "    url: http://127.0.0.1:9/snapshot.jpg\n"
        "    fps: 0.1\n"
        "    rois:\n"
        "      - {location: A-1, sku: X, polygon: [[0, 0], [10, 0]]}\n"
        "      - {location: A-2, sku: X, polygon: [[0, 0], [10, 0], [10, 10]], colour: red}\n"
        "zones:\n"
        "  A: {cameras: [cam-1, cam-9]}\n"
        "  B: {scan_seconds: 5}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    text = str(caught.value)
    assert f"{path}:8: cameras[0].rois[0].polygon:" in text  # fewer than 3 points
    assert f"{path}:9: cameras[0].rois[1].colour: unknown key" in text
    assert f"{path}:12: zones.B:" in text
    assert "at least one reader or camera" in text


@pytest.mark.parametrize(
    ("camera", "zone", "message"),
    [
        ("fps: 0.05", "cameras: [cam-1]", "fps 0.05 is too slow for stall_seconds 10.0"),
        (
            "frames: 3",
            "cameras: [cam-9]",
            "zones.A.cameras[0]: unknown camera 'cam-9' (known: cam-1)",
        ),
        ("moving: true", "cameras: [cam-1]", ""),
    ],
)
def test_camera_references_and_pacing(tmp_path: Path, camera: str, zone: str, message: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "site: s\ngateway_id: g\ncameras:\n  - name: cam-1\n    url: usb:0\n"
        f"    {camera}\n"
        "    rois:\n      - {location: A-1, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}\n"
        f"zones:\n  A: {{{zone}}}\n"
    )
    if not message:
        config = load_gateway_config(path)
        assert config.camera("cam-1").moving
        assert config.zone_locations("A") == config.vision_locations("A") == ["A-1"]
        return
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    assert message in str(caught.value)


def test_reader_type_missing_and_serial_readers(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, VALID.replace("  - type: llrp\n    name", "  - name")))
    assert any("readers[0].type: required key is missing" in issue for issue in found)
    serial = VALID.replace(
        "readers:\n",
        "readers:\n  - {type: serial, name: cart-1, url: 'socket://127.0.0.1:7000',"
        " location: A-09-01}\n",
    )
    config = load_gateway_config(write(tmp_path, serial))
    assert config.reader("cart-1").antennas == {1: "A-09-01"}
    bad = serial.replace("location: A-09-01", "location: A-09-01, antennas: {1: X}")
    assert any("readers[0].antennas: unknown key" in i for i in issues_of(write(tmp_path, bad)))


CAMERAS = """\
site: s
gateway_id: g
cameras:
  - name: cam-1
    url: htp://10.0.0.7/stream
    model: missing.onnx
    rois:
      - {location: A-1, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}
  - name: cam-2
    url: rtsp://10.0.0.8/stream
    model: corrupt.onnx
    rois:
      - {location: A-2, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}
zones:
  A: {cameras: [cam-1, cam-2]}
"""


def test_validate_reports_every_camera_source_and_model_error_at_its_key(tmp_path: Path) -> None:
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x01not a protobuf model" * 20)
    path = write(tmp_path, CAMERAS)
    done = run_cli("gateway", "validate", "-c", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert lines[0].startswith(f"{path}:5: cameras[0].url: htp://10.0.0.7/stream: unknown camera")
    assert lines[1] == (
        f"{path}:6: cameras[0].model: no model file at {tmp_path / 'missing.onnx'}"
        " (No such file or directory)"
    )
    assert lines[2].startswith(f"{path}:11: cameras[1].model: {tmp_path / 'corrupt.onnx'}: not a")
    # The daemon loads the same way: it refuses to start with the same lines, no traceback.
    run = run_cli("gateway", "run", "-c", str(path))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == lines


def test_zone_references_are_all_reported_at_their_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace(
            "zones:\n",
            "  - {type: llrp, name: dock-a, host: 10.0.0.6, antennas: {1: C-01}}\n"
            "  - {type: llrp, name: dock-c, host: 10.0.0.7, antennas: {1: A-02}}\n"
            "zones:\n  B: {readers: [dock-c, dock-x]}\n",
        ),
    )
    assert issues_of(path) == [
        f"{path}:12: readers[1].name: 'dock-a' is already the name of readers[0]",
        f"{path}:15: zones.B.readers[1]: unknown reader 'dock-x' (known: dock-a, dock-c)",
    ]
    shared = write(
        tmp_path,
        path.read_text()
        .replace(", dock-x", "")
        .replace("dock-a, host: 10.0.0.6", "dock-b, host: 10.0.0.6"),
    )
    assert issues_of(shared) == [
        f"{shared}:17: zones.A.readers[0]: location 'A-02' is already in zone 'B';"
        " a location belongs to one zone"
    ]
