"""``edgecount site bridge``: site.yaml checked with file/line/key errors, the generated text."""

from __future__ import annotations

import secrets
import ssl
import subprocess
from pathlib import Path

import pytest

from edgecount import contract
from edgecount.cli import main
from edgecount.security import AclSpec, acl_text
from edgecount.sitebridge import FRAME_PACKET_BYTES, bridge_conf, load_site_spec
from tests.conftest import MosquittoFactory, TlsFiles
from tests.edgecount.test_sitebridge_brokers import STATE, connect, count_payload

SITE = "dc-east"


def write_site(tmp_path: Path, body: str) -> Path:
    """A site.yaml with PEM placeholders next to it (the generator checks they exist)."""
    for name in ("ca.crt", "bridge.crt", "bridge.key"):
        (tmp_path / name).write_text("PEM\n", encoding="utf-8")
    path = tmp_path / "site.yaml"
    path.write_text(body, encoding="utf-8")
    return path


CERT_SITE = f"""\
site: {SITE}
central:
  host: mqtt.central.example
  user: bridge-dc-east
  tls:
    ca_file: ca.crt
    cert_file: bridge.crt
    key_file: bridge.key
"""


def test_the_configuration_with_a_certificate(tmp_path: Path) -> None:
    spec = load_site_spec(write_site(tmp_path, CERT_SITE))
    text = bridge_conf(spec)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    connection = lines.index("connection edgecount-dc-east")
    assert lines[:connection] == [
        "persistence true",
        "autosave_interval 60",
        "max_queued_messages 1000000",
        "max_queued_bytes 1073741824",
        "queue_qos0_messages false",
    ]  # broker-wide, before the bridge section
    bridge = lines[connection:]
    root = contract.site_root(SITE)
    for line in (
        "address mqtt.central.example:8883",
        "bridge_protocol_version mqttv50",
        "remote_clientid edgecount-bridge-dc-east",
        "local_clientid edgecount-bridge-dc-east.local",
        "cleansession false",
        "local_cleansession false",
        f"bridge_cafile {tmp_path.resolve() / 'ca.crt'}",
        f"bridge_certfile {tmp_path.resolve() / 'bridge.crt'}",
        f"bridge_keyfile {tmp_path.resolve() / 'bridge.key'}",
        "bridge_insecure false",
        "notifications true",
        f"notification_topic {root}bridge/state",
        "try_private true",
        "bridge_attempt_unsubscribe false",
        "restart_timeout 5 120",
        f"bridge_max_packet_size {1024 * 1024}",
    ):
        assert line in bridge, line
    assert [line for line in bridge if line.startswith("topic ")] == [
        f"topic {root}count/# out 1",
        f"topic {root}scan/# out 1",
        f"topic {root}status/+ out 1",
        f"topic {root}frame/# out 0",
        f"topic {root}cmd/+/scan in 1",
    ]
    assert not any(line.startswith(("remote_password", "remote_username")) for line in lines)
    assert bridge_conf(spec) == text  # deterministic


def test_frames_can_stay_on_the_site(tmp_path: Path) -> None:
    spec = load_site_spec(write_site(tmp_path, CERT_SITE + "bridge: {frames: false}\n"))
    assert "frame/" not in bridge_conf(spec)


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("  colour: blue\n", ":9: central.colour", "unknown key"),
        ("queue: {max_messages: 10}\n", ":9: queue.max_messages", "greater than or"),
        (
            "bridge: {restart_min_seconds: 30, restart_max_seconds: 10}\n",
            ":9: bridge",
            "restart_min_seconds is larger",
        ),
        (
            "bridge: {max_packet_bytes: 100000}\n",
            ":9: bridge",
            f"below the largest camera frame ({FRAME_PACKET_BYTES} bytes)",
        ),
    ],
)
def test_bad_site_yaml_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, where: str, message: str
) -> None:
    path = write_site(tmp_path, CERT_SITE + extra)
    assert main(["site", "bridge", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}{where}: " in err, err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        (CERT_SITE.replace("  user: bridge-dc-east\n", ""), ":2: central.user", "missing"),
        (CERT_SITE.replace("mqtt.central.example", "'bad host'"), ":3: central.host", "host"),
        (CERT_SITE.replace("ca.crt", "nowhere.crt"), ":6: central.tls.ca_file", "no such file"),
        (
            CERT_SITE.replace("    cert_file: bridge.crt\n    key_file: bridge.key\n", ""),
            ":2: central",
            "the bridge needs credentials",
        ),
        (CERT_SITE.replace("    key_file: bridge.key\n", ""), ":5: central.tls", "go together"),
        (CERT_SITE + "  password_file: pw\n", ":9: central.password_file", "cannot read"),
    ],
)
def test_more_mistakes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, where: str, message: str
) -> None:
    path = write_site(tmp_path, body)
    assert main(["site", "bridge", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}{where}: " in err, err
    assert message in err, err


@pytest.mark.parametrize(
    ("secret", "message"),
    [(" padded", "starts or ends with a blank"), ("", "is empty"), ("two\nlines\n", "line break")],
)
def test_a_password_mosquitto_would_read_differently_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: str, message: str
) -> None:
    (tmp_path / "pw").write_text(secret, encoding="utf-8")
    path = write_site(tmp_path, CERT_SITE + "  password_file: pw\n")
    assert main(["site", "bridge", "-c", str(path), "-o", str(tmp_path / "out.conf")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:9: central.password_file: " in err
    assert message in err
    assert not (tmp_path / "out.conf").exists()


def test_a_password_goes_only_into_a_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pw").write_text("s3cret-#word\n", encoding="utf-8")
    path = write_site(tmp_path, CERT_SITE + "  password_file: pw\n")
    assert main(["site", "bridge", "-c", str(path)]) == 2  # not to stdout
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err
    assert "-o FILE" in captured.err
    out = tmp_path / "bridge.conf"
    out.write_text("old\n", encoding="utf-8")
    out.chmod(0o644)
    assert main(["site", "bridge", "-c", str(path), "-o", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text(encoding="utf-8")
    assert "remote_username bridge-dc-east\nremote_password s3cret-#word\n" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_central_acl_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_site(tmp_path, CERT_SITE)
    assert main(["site", "bridge", "-c", str(path), "--central-acl"]) == 0
    block = capsys.readouterr().out
    spec = AclSpec.model_validate({"site": SITE, "bridges": ["bridge-dc-east"]})
    assert block.split("\n", 1)[1] in acl_text(spec)  # the same lines as `security acl`
    root = contract.site_root(SITE)
    assert f"topic write {root}count/#" in block
    assert f"topic read {root}cmd/+/scan" in block
    assert f"topic write {root}bridge/state" in block
    assert "cmd/+/scan" not in block.replace(f"topic read {root}cmd/+/scan", "")


def test_a_bridge_with_a_password_over_tls(
    mosquitto_factory: MosquittoFactory, tls_certs: TlsFiles, tmp_path: Path
) -> None:
    """The other way to sign in: a user and password (over TLS, no client certificate)."""
    secret = secrets.token_urlsafe(18)
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user in ("bridge-dc-east", "central-app"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, secret], check=True)
    acl = tmp_path / "central.acl"
    spec = AclSpec.model_validate(
        {"site": SITE, "bridges": ["bridge-dc-east"], "reconciler": ["central-app"]}
    )
    acl.write_text(acl_text(spec), encoding="utf-8")
    ping = ssl.create_default_context(cafile=str(tls_certs.ca))
    extra = f"{tls_certs.broker_config()}\nallow_anonymous false\npassword_file {passwd}\n"
    central = mosquitto_factory(extra + f"acl_file {acl}\n", ping_tls=ping)
    (tmp_path / "pw").write_text(secret + "\n", encoding="utf-8")
    site_yaml = tmp_path / "site.yaml"
    site_yaml.write_text(
        f"site: {SITE}\ncentral:\n  host: 127.0.0.1\n  port: {central.port}\n"
        f"  user: bridge-dc-east\n  tls: {{ca_file: {tls_certs.ca}}}\n  password_file: pw\n"
        "bridge: {restart_min_seconds: 1, restart_max_seconds: 2}\n",
        encoding="utf-8",
    )
    generated = tmp_path / "bridge.conf"
    assert main(["site", "bridge", "-c", str(site_yaml), "-o", str(generated)]) == 0
    (tmp_path / "db").mkdir()
    site = mosquitto_factory(f"persistence_location {tmp_path / 'db'}/\n" + generated.read_text())
    root = contract.site_root(SITE)
    app = connect(central, "central-app", [f"{root}#"], tls=ping, login=("central-app", secret))
    gateway = connect(site, "gw-01", [])
    try:
        app.wait(lambda: app.last(STATE) == b"1", "the bridge's state 1")
        topic = contract.count_topic(SITE, "A", "L1")
        payload = count_payload("L1", 7)
        assert gateway.publish(topic, payload, retain=True) == 0
        app.wait(lambda: payload in app.on(topic), "the count at the centre")
    finally:
        app.close()
        gateway.close()


def test_the_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "site.example.yaml"
    spec = load_site_spec(example, check_files=False)  # its certificates live on a real site
    assert spec.central.tls.cert_file is not None
    assert "connection edgecount-dc1" in bridge_conf(spec)
