"""The broker's access control list, generated: ``edgecount security acl``.

Each MQTT user gets exactly the topics of its role (see docs/security.md):

* a **gateway** (user name = gateway id) writes ``count/{zone}/#`` and ``scan/{zone}`` of its
  own zones and ``status/{gateway}``, and reads ``cmd/{gateway}/scan`` and the ``pose/{robot}``
  of the robots that carry its readers;
* the **reconciler** reads counts, scans and statuses, and writes discrepancies,
  adjustments, decisions, dead letters and scan requests;
* the **WMS** reads counts, scans, statuses, discrepancies, adjustments, decisions and dead
  letters;
* an **operator** (``edgecount gateway scan-request``) writes ``cmd/+/scan`` and reads counts,
  scans and statuses;
* a **robot** writes only its own ``pose/{robot}``.

Anonymous clients get nothing (the broker runs with ``allow_anonymous false``). The input is
either a small YAML file (:class:`AclSpec`) or the reconciler's configuration, whose
``authorized_gateways`` then decides both the ACL and the reconciler's own check, so the two
cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from edgecount.contract import site_root
from edgecount.exitcodes import ExitCode
from edgecount.settings import Segment, StrictModel
from edgecount.yamlcfg import load_model, load_or_report

__all__ = ["AclSpec", "GatewayGrant", "acl_text", "load_acl_spec", "spec_from_reconciler"]


class GatewayGrant(StrictModel):
    """What one gateway may do: report its zones, read the poses of its robots."""

    zones: list[Segment] = Field(min_length=1)
    robots: list[Segment] = Field(default_factory=list)


class AclSpec(StrictModel):
    """The input of the ACL generator (YAML).

    Attributes:
        site: The site whose topics the broker carries.
        gateways: Gateway id (its MQTT user name) → its zones (a list) or a
            :class:`GatewayGrant` (``{zones: [...], robots: [...]}``).
        reconciler: MQTT user names of the reconciler instances.
        wms: MQTT user names of read-only consumers (the WMS, dashboards).
        operators: MQTT user names that may ask gateways for scans (``edgecount gateway
            scan-request``): they write ``cmd/+/scan`` and read counts, scans and statuses.
        robots: Robot ids (their MQTT user names) that publish a pose.
    """

    site: Segment
    gateways: dict[Segment, GatewayGrant] = Field(min_length=1)
    reconciler: list[Segment] = Field(default_factory=lambda: ["reconciler"])
    wms: list[Segment] = Field(default_factory=list)
    operators: list[Segment] = Field(default_factory=list)
    robots: list[Segment] = Field(default_factory=list)

    @field_validator("gateways", mode="before")
    @classmethod
    def _zones_alone(cls, value: Any) -> Any:
        """``gw-1: [A, B]`` is short for ``gw-1: {zones: [A, B]}``."""
        if isinstance(value, dict):
            return {k: {"zones": v} if isinstance(v, list) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_role_per_user(self) -> AclSpec:
        seen: dict[str, str] = {}
        for role, users in self.users().items():
            for user in users:
                if user in seen:
                    raise ValueError(f"user {user!r} is both {seen[user]} and {role}")
                seen[user] = role
        for gateway, grant in self.gateways.items():
            unknown = sorted(set(grant.robots) - set(self.robots))
            if unknown:
                raise ValueError(f"gateway {gateway!r} names robots not in robots: {unknown}")
        return self

    def users(self) -> dict[str, list[str]]:
        """Role → its MQTT user names."""
        return {
            "gateway": list(self.gateways),
            "reconciler": list(self.reconciler),
            "wms": list(self.wms),
            "operator": list(self.operators),
            "robot": list(self.robots),
        }


def load_acl_spec(path: Path) -> AclSpec:
    """Load and validate an ACL spec; raises ConfigError with file, line and key."""
    return load_model(path, AclSpec, context={"base_dir": path.parent})


def spec_from_reconciler(
    path: Path,
    *,
    wms: Sequence[str] = (),
    robots: Sequence[str] = (),
    operators: Sequence[str] = (),
) -> AclSpec:
    """The ACL spec of a reconciler configuration: its ``authorized_gateways`` and user.

    Raises:
        ConfigError: The configuration is invalid.
        ValueError: It has no ``authorized_gateways`` (nothing to grant).
    """
    from reconciler.config import load_reconciler_config

    config = load_reconciler_config(path)
    if not config.authorized_gateways:
        raise ValueError(f"{path}: authorized_gateways is not set; no gateway can be granted")
    return AclSpec(
        site=config.site,
        gateways={gw: GatewayGrant(zones=z) for gw, z in config.authorized_gateways.items()},
        reconciler=[config.mqtt.username or "reconciler"],
        wms=list(wms),
        operators=list(operators),
        robots=list(robots),
    )


def _block(user: str, lines: Iterable[tuple[str, str]]) -> Iterator[str]:
    yield f"user {user}"
    for access, topic in lines:
        yield f"topic {access} {topic}"
    yield ""


def acl_text(spec: AclSpec) -> str:
    """The Mosquitto ``acl_file`` for ``spec`` (deterministic: same spec, same text)."""
    root = site_root(spec.site)
    everyone = ", ".join(u for users in spec.users().values() for u in users)
    out = [
        f"# Mosquitto acl_file for site {spec.site}, generated by `edgecount security acl`.",
        "# Do not edit: change the spec (or authorized_gateways) and generate again.",
        "# Anonymous clients get no line here; run the broker with `allow_anonymous false`.",
        f"# Users, each needing a password_file entry (mosquitto_passwd): {everyone}",
        "",
    ]
    for gateway, grant in sorted(spec.gateways.items()):
        lines = [("write", f"{root}count/{zone}/#") for zone in grant.zones]
        lines += [("write", f"{root}scan/{zone}") for zone in grant.zones]
        lines += [("write", f"{root}status/{gateway}"), ("read", f"{root}cmd/{gateway}/scan")]
        lines += [("read", f"{root}pose/{robot}") for robot in grant.robots]
        out += ["# gateway: reports its zones only", *_block(gateway, lines)]
    reads = [("read", f"{root}{t}") for t in ("count/#", "scan/#", "status/+")]
    writes = [
        ("write", f"{root}{t}")
        for t in ("discrepancy/#", "adjustment", "decision", "deadletter", "cmd/+/scan")
    ]
    for user in spec.reconciler:
        out += ["# reconciler", *_block(user, reads + writes)]
    consumer = reads + [("read", f"{root}{t}") for t in ("discrepancy/#", "adjustment", "decision")]
    for user in spec.wms:
        out += ["# WMS: reads only", *_block(user, [*consumer, ("read", f"{root}deadletter")])]
    for user in spec.operators:
        lines = [*reads, ("write", f"{root}cmd/+/scan")]
        out += ["# operator: asks gateways for scans", *_block(user, lines)]
    for robot in spec.robots:
        out += ["# robot: its pose only", *_block(robot, [("write", f"{root}pose/{robot}")])]
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount security acl``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--config", type=Path, metavar="FILE", help="ACL spec YAML file")
    source.add_argument(
        "--reconciler",
        type=Path,
        metavar="FILE",
        help="reconciler YAML file: grant its authorized_gateways and its MQTT user",
    )
    parser.add_argument("--wms", action="append", default=[], metavar="USER",
                        help="a read-only consumer (with --reconciler; repeatable)")  # fmt: skip
    parser.add_argument("--robot", action="append", default=[], metavar="ROBOT",
                        help="a robot that publishes its pose (with --reconciler)")  # fmt: skip
    parser.add_argument("--operator", action="append", default=[], metavar="USER",
                        help="a user of `gateway scan-request` (with --reconciler)")  # fmt: skip
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)"
    )


def run(args: argparse.Namespace) -> int:
    """Print or write the ACL file; exit 2 when the input is invalid."""
    if args.config is not None:
        spec = load_or_report(load_acl_spec, args.config)
    else:
        try:
            spec = load_or_report(
                lambda p: spec_from_reconciler(
                    p, wms=args.wms, robots=args.robot, operators=args.operator
                ),
                args.reconciler,
            )
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return ExitCode.USAGE
    if spec is None:
        return ExitCode.USAGE
    text = acl_text(spec)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return ExitCode.OK
