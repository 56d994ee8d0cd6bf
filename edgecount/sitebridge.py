"""``edgecount site bridge``: the Mosquitto bridge from a site's broker to the central broker.

A site runs its own Mosquitto: gateways publish to it and scans never wait on the WAN. Its
bridge forwards the site's tree to the central broker, where the reconcilers subscribe, and
brings the site's scan requests back (docs/operations.md, "Multi-site"). This module reads
the site's ``site.yaml`` (:class:`SiteBridgeSpec`) and writes the Mosquitto configuration of
that bridge (:func:`bridge_conf`):

* out, QoS 1: ``count/#``, ``scan/#``, ``status/+``; out, QoS 0: ``frame/#`` (best effort,
  like on the site; ``bridge.frames: false`` keeps them on the site);
* in, QoS 1: ``cmd/+/scan``. No pattern is both in and out, and every pattern is under
  the site's own root, so nothing the bridge brings in is sent back out (no loop), and
  nothing of another site passes;
* MQTT 5, TLS with the site's certificate (or a user and password), a fixed client id with
  a persistent session, deep queues kept across a restart of the site broker, and the
  connection state on ``edgecount/v1/{site}/bridge/state`` (retained ``1`` / ``0``).

The central broker's side is the ACL of the bridge's user: ``bridges:`` in
``edgecount security acl`` (:func:`edgecount.security.bridge_grants`), or
``edgecount site bridge --central-acl``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgecount import contract
from edgecount.atomicfile import write_atomic
from edgecount.exitcodes import ExitCode
from edgecount.mqtt import MqttSettingsError, read_password
from edgecount.security import bridge_grants
from edgecount.settings import Segment, StrictModel, resolve_path
from edgecount.yamlcfg import PATTERN_MESSAGES, config_argument, load_model, load_or_report

__all__ = [
    "FRAME_PACKET_BYTES",
    "SiteBridgeSpec",
    "add_arguments",
    "bridge_conf",
    "central_acl",
    "load_site_spec",
    "run",
]

FRAME_PACKET_BYTES = 4 * math.ceil(contract.MAX_FRAME_BYTES / 3) + 4096
"""The largest MQTT packet of a camera frame: the JPEG in base64, its fields and topic."""

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")
PATTERN_MESSAGES[_HOST.pattern] = "a host name or IP address (letters, digits, '.', ':', '-')"
Host = Annotated[str, Field(pattern=_HOST.pattern)]

MIB = 1024 * 1024


def _conf_value(value: str, what: str) -> str:
    """A value Mosquitto reads back unchanged: one line, no blanks at either end, UTF-8."""
    if not value:
        raise ValueError(f"the {what} is empty")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"the {what} has a line break or NUL (a Mosquitto value is one line)")
    if value != value.strip():
        raise ValueError(f"the {what} starts or ends with a blank (Mosquitto would drop it)")
    if len(value.encode("utf-8")) > 65535:
        raise ValueError(f"the {what} is longer than 65535 bytes")
    return value


def bridge_password(path: Path) -> str:
    """The bridge's password from ``path`` (trailing newline ignored), fit for mosquitto.conf.

    Raises:
        ValueError: The file cannot be read, or the password cannot go into mosquitto.conf.
    """
    try:
        password = read_password(path)
    except MqttSettingsError as exc:
        raise ValueError(str(exc)) from None
    return _conf_value(password, f"password in {path}")


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """With ``check_files`` in the context, a file the site broker will need must exist."""
    if value is None:
        return None
    _conf_value(str(value), "path")
    if (info.context or {}).get("check_files") and not value.is_file():
        raise ValueError(f"{value}: no such file")
    return value


class CentralTls(StrictModel):
    """TLS to the central broker: its CA, and the bridge's own certificate (preferred)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    _paths = field_validator("ca_file", "cert_file", "key_file")(resolve_path)
    _exist = field_validator("ca_file", "cert_file", "key_file")(_existing_file)

    @model_validator(mode="after")
    def _pair(self) -> CentralTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class Central(StrictModel):
    """The central broker and how the bridge signs in there.

    Attributes:
        host: Its host name (must match its certificate) or IP address.
        port: Its TLS port.
        user: The bridge's MQTT user there, the one the central ACL grants: the CN of
            ``tls.cert_file`` (the central listener sets ``use_identity_as_username``), or
            the user name sent with ``password_file``.
        tls: CA, and the bridge's certificate and key.
        password_file: Instead of (or besides) a certificate: the password, read when the
            configuration is generated and written into it (Mosquitto has no password file
            for bridges; the output is then made mode 0600).
    """

    host: Host
    port: int = Field(default=8883, ge=1, le=65535)
    user: Segment
    tls: CentralTls
    password_file: Path | None = None

    _path = field_validator("password_file")(resolve_path)

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and (info.context or {}).get("check_files"):
            bridge_password(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Central:
        if self.tls.cert_file is None and self.password_file is None:
            raise ValueError(
                "the bridge needs credentials: tls.cert_file and tls.key_file (preferred),"
                " or password_file"
            )
        return self


class BridgeSettings(StrictModel):
    """The bridge connection itself."""

    name: Segment | None = None
    client_id: Segment | None = None
    keepalive_seconds: int = Field(default=60, ge=5, le=3600)
    restart_min_seconds: int = Field(default=5, ge=1, le=3600)
    restart_max_seconds: int = Field(default=120, ge=1, le=3600)
    frames: bool = True
    max_packet_bytes: int = Field(default=MIB, ge=64 * 1024, le=256 * MIB)

    @model_validator(mode="after")
    def _consistent(self) -> BridgeSettings:
        if self.restart_min_seconds > self.restart_max_seconds:
            raise ValueError("restart_min_seconds is larger than restart_max_seconds")
        if self.frames and self.max_packet_bytes < FRAME_PACKET_BYTES:
            raise ValueError(
                f"max_packet_bytes {self.max_packet_bytes} is below the largest camera frame"
                f" ({FRAME_PACKET_BYTES} bytes): raise it, or set frames: false"
            )
        return self


class QueueSettings(StrictModel):
    """What the site broker keeps for the bridge while the central broker is out of reach.

    Attributes:
        max_messages: QoS 1 messages queued (per client, so for the bridge) before new ones
            are dropped; Mosquitto's ``max_queued_messages``.
        max_bytes: The same limit in payload bytes (``max_queued_bytes``); the first limit
            reached applies.
        autosave_seconds: How often the broker writes its queues to disk (``autosave_interval``):
            what a power cut at the site loses at most.
    """

    max_messages: int = Field(default=1_000_000, ge=1000, le=100_000_000)
    max_bytes: int = Field(default=1024 * MIB, ge=MIB, le=64 * 1024 * MIB)
    autosave_seconds: int = Field(default=60, ge=1, le=86400)


class SiteBridgeSpec(StrictModel):
    """``site.yaml``: a site broker's bridge to the central broker (docs/configuration.md)."""

    site: Segment
    central: Central
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)

    @property
    def connection_name(self) -> str:
        """Mosquitto's ``connection`` name (default ``edgecount-{site}``)."""
        return self.bridge.name or f"edgecount-{self.site}"

    @property
    def remote_clientid(self) -> str:
        """The bridge's client id on the central broker: fixed, so its session is kept."""
        return self.bridge.client_id or f"edgecount-bridge-{self.site}"

    @property
    def local_clientid(self) -> str:
        """The bridge's client id on the site broker (its queue is this client's)."""
        return f"{self.remote_clientid}.local"


def load_site_spec(path: Path, *, check_files: bool = True) -> SiteBridgeSpec:
    """Load and validate ``site.yaml``; raises ConfigError naming file, line and key.

    With ``check_files`` the CA, certificate and key must exist and the password file must
    hold a usable password (relative paths are taken from the file's folder).
    """
    context = {"base_dir": path.parent.resolve(), "check_files": check_files}
    return load_model(path, SiteBridgeSpec, context=context)


def _topic_lines(spec: SiteBridgeSpec) -> list[str]:
    root = contract.site_root(spec.site)
    out = [f"topic {root}{pattern} out 1" for pattern in ("count/#", "scan/#", "status/+")]
    if spec.bridge.frames:
        out.append(f"topic {root}frame/# out 0")
    out.append(f"topic {root}cmd/+/scan in 1")
    return out


def bridge_conf(spec: SiteBridgeSpec, password: str | None = None) -> str:
    """The Mosquitto configuration of the site's bridge (deterministic).

    Args:
        spec: The site's bridge.
        password: The bridge's password, when ``central.password_file`` is set.
    """
    central, bridge, queue = spec.central, spec.bridge, spec.queue
    restart = (
        f"{bridge.restart_min_seconds}"
        if bridge.restart_min_seconds == bridge.restart_max_seconds
        else f"{bridge.restart_min_seconds} {bridge.restart_max_seconds}"
    )
    lines = [
        f"# Mosquitto bridge of site {spec.site} to the central broker,"
        " generated by `edgecount site bridge`.",
        "# Do not edit: change site.yaml and generate again. Put this file in the site broker's",
        "# include_dir (/etc/mosquitto/conf.d/), or at the end of mosquitto.conf.",
        *(["# It holds the bridge's password: keep it mode 0600."] if password else []),
        "",
        "# --- 1. Broker-wide settings (they belong to mosquitto.conf and apply to every client",
        "# of the site broker; set here, they override the same lines earlier in it).",
        "# Queued messages survive a restart of the site broker; written every autosave_interval.",
        "persistence true",
        f"autosave_interval {queue.autosave_seconds}",
        "# Deep queue for a WAN outage: QoS 1 messages held for the bridge, by count and bytes;",
        "# beyond either limit new messages are dropped (docs/operations.md, Multi-site).",
        f"max_queued_messages {queue.max_messages}",
        f"max_queued_bytes {queue.max_bytes}",
        "# Frames (QoS 0) are not queued while the centre is away: best effort, as on the site.",
        "queue_qos0_messages false",
        "",
        "# --- 2. The bridge (every line from `connection` on belongs to it).",
        f"connection {spec.connection_name}",
        f"address {central.host}:{central.port}",
        "bridge_protocol_version mqttv50",
        "# A fixed client id and no clean start: the session and its queue are kept.",
        f"remote_clientid {spec.remote_clientid}",
        f"local_clientid {spec.local_clientid}",
        "cleansession false",
        "local_cleansession false",
        "start_type automatic",
        f"keepalive_interval {bridge.keepalive_seconds}",
        f"restart_timeout {restart}",
        "try_private true",
        "bridge_attempt_unsubscribe false",
        "bridge_outgoing_retain true",
        f"bridge_max_packet_size {bridge.max_packet_bytes}",
        f"bridge_cafile {central.tls.ca_file}",
        "bridge_insecure false",
    ]
    tls = central.tls
    if tls.cert_file is not None and tls.key_file is not None:
        lines += [f"bridge_certfile {tls.cert_file}", f"bridge_keyfile {tls.key_file}"]
    if password is not None:
        lines += [f"remote_username {central.user}", f"remote_password {password}"]
    lines += [
        "# Connection state, retained, on both brokers: 1 connected, 0 not (the bridge's Will).",
        "notifications true",
        "notifications_local_only false",
        f"notification_topic {contract.bridge_state_topic(spec.site)}",
        "# Out: what the site's gateways publish. In: the site's scan requests. No overlap.",
        *_topic_lines(spec),
    ]
    return "\n".join(lines) + "\n"


def central_acl(spec: SiteBridgeSpec) -> str:
    """The central broker's ACL block for this site's bridge user."""
    lines = [
        f"# Central broker: the bridge of site {spec.site}, generated by `edgecount site bridge`.",
        f"user {spec.central.user}",
    ]
    lines += [f"topic {access} {topic}" for access, topic in bridge_grants(spec.site)]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount site bridge``."""
    parser.description = (
        "Write the Mosquitto configuration of a site broker's bridge to the central broker:"
        " MQTT 5 over TLS with the site's credentials, a persistent session and a deep queue;"
        " the site's counts, scans, statuses and frames out, its scan requests in; the"
        " connection state on edgecount/v1/{site}/bridge/state. See docs/operations.md"
        " (Multi-site) and docs/configuration.md (site.yaml)."
    )
    config_argument(parser, "the site's bridge (site.yaml)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write here, atomically (default: stdout; required when the bridge uses a"
        " password, which the file then holds: mode 0600)",
    )
    parser.add_argument(
        "--central-acl",
        action="store_true",
        help="write the central broker's ACL block for the bridge's user instead",
    )


def run(args: argparse.Namespace) -> int:
    """Print or write the bridge configuration; exit 2 when site.yaml is invalid."""
    spec = load_or_report(load_site_spec, args.config)
    if spec is None:
        return ExitCode.USAGE
    if args.central_acl:
        return _emit(central_acl(spec), args.output, 0o644)
    password = None
    if spec.central.password_file is not None:
        if args.output is None:
            print(
                f"{args.config}: central.password_file: the configuration would hold the"
                " password; write it to a file with -o FILE (mode 0600)",
                file=sys.stderr,
            )
            return ExitCode.USAGE
        try:
            password = bridge_password(spec.central.password_file)
        except ValueError as exc:  # changed since it was validated a moment ago
            print(f"{args.config}: central.password_file: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    return _emit(bridge_conf(spec, password), args.output, 0o600 if password else 0o644)


def _emit(text: str, output: Path | None, mode: int) -> int:
    if output is None:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        write_atomic(output, text, mode=mode)
    except OSError as exc:
        print(f"cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
