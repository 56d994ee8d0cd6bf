"""The broker's access control list, generated: ``edgecount security acl``.

Each MQTT user gets exactly the topics of its role (see docs/security.md):

* a **gateway** (user name = gateway id) writes ``count/{zone}/#``, ``frame/{zone}/#`` and
  ``scan/{zone}`` of its own zones and ``status/{gateway}``, and reads ``cmd/{gateway}/scan``
  and the ``pose/{robot}`` of the robots that carry its readers;
* the **reconciler** reads counts, scans, statuses and camera frames, and writes discrepancies,
  adjustments, decisions, dead letters and scan requests;
* the **WMS** reads counts, scans, statuses, discrepancies, adjustments, decisions and dead
  letters;
* an **operator** (``edgecount gateway scan-request``) writes ``cmd/+/scan`` and reads counts,
  scans and statuses;
* a **robot** writes only its own ``pose/{robot}``;
* a site's **bridge** (on the central broker: the user of ``edgecount site bridge``'s
  connection, the CN of its certificate) writes what the site's gateways write, for every
  zone of its site, and the bridge's connection state, and reads the site's scan requests.

Anonymous clients get nothing (the broker runs with ``allow_anonymous false``). The input is
either a small YAML file (:class:`AclSpec`) or the reconciler's configuration, whose
``authorized_gateways`` then decides both the ACL and the reconciler's own check, so the two
cannot drift apart. This module is the shared core's part (the spec and the text); reading a
reconciler configuration, and the command itself, live in :mod:`reconciler.acl`, so the core
imports no application package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from edgecount.contract import site_root
from edgecount.settings import Segment, StrictModel
from edgecount.yamlcfg import load_model

__all__ = ["AclSpec", "GatewayGrant", "acl_text", "bridge_grants", "load_acl_spec"]


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
        bridges: MQTT user names of the site's bridge on a central broker (docs/operations.md,
            "Multi-site"): it writes the site's counts, scans, statuses, frames and its own
            connection state, and reads the site's scan requests. A central broker's ACL
            names the site's bridge and no gateway; the site broker's names its gateways.
    """

    site: Segment
    gateways: dict[Segment, GatewayGrant] = Field(default_factory=dict)
    reconciler: list[Segment] = Field(default_factory=lambda: ["reconciler"])
    wms: list[Segment] = Field(default_factory=list)
    operators: list[Segment] = Field(default_factory=list)
    robots: list[Segment] = Field(default_factory=list)
    bridges: list[Segment] = Field(default_factory=list)

    @field_validator("gateways", mode="before")
    @classmethod
    def _zones_alone(cls, value: Any) -> Any:
        """``gw-1: [A, B]`` is short for ``gw-1: {zones: [A, B]}``."""
        if isinstance(value, dict):
            return {k: {"zones": v} if isinstance(v, list) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_role_per_user(self) -> AclSpec:
        if not self.gateways and not self.bridges:
            raise ValueError("name at least one gateway (a site broker) or bridge (a central one)")
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
            "bridge": list(self.bridges),
        }


def load_acl_spec(path: Path) -> AclSpec:
    """Load and validate an ACL spec; raises ConfigError with file, line and key."""
    return load_model(path, AclSpec, context={"base_dir": path.parent})


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
        lines += [("write", f"{root}frame/{zone}/#") for zone in grant.zones]
        lines += [("write", f"{root}scan/{zone}") for zone in grant.zones]
        lines += [("write", f"{root}status/{gateway}"), ("read", f"{root}cmd/{gateway}/scan")]
        lines += [("read", f"{root}pose/{robot}") for robot in grant.robots]
        out += ["# gateway: reports its zones only", *_block(gateway, lines)]
    reads = [("read", f"{root}{t}") for t in ("count/#", "scan/#", "status/+", "bridge/state")]
    reconciler_reads = [*reads, ("read", f"{root}frame/#")]
    writes = [
        ("write", f"{root}{t}")
        for t in ("discrepancy/#", "adjustment", "decision", "deadletter", "cmd/+/scan")
    ]
    for user in spec.reconciler:
        out += ["# reconciler", *_block(user, reconciler_reads + writes)]
    consumer = reads + [("read", f"{root}{t}") for t in ("discrepancy/#", "adjustment", "decision")]
    for user in spec.wms:
        out += ["# WMS: reads only", *_block(user, [*consumer, ("read", f"{root}deadletter")])]
    for user in spec.operators:
        lines = [*reads, ("write", f"{root}cmd/+/scan")]
        out += ["# operator: asks gateways for scans", *_block(user, lines)]
    for robot in spec.robots:
        out += ["# robot: its pose only", *_block(robot, [("write", f"{root}pose/{robot}")])]
    for user in spec.bridges:
        out += ["# site bridge: its own site's tree only", *_block(user, bridge_grants(spec.site))]
    return "\n".join(out)


def bridge_grants(site: str) -> list[tuple[str, str]]:
    """The (access, topic) lines of a site's bridge user on the central broker.

    What the site's gateways publish, for every zone of the site (the site broker's ACL already
    holds each gateway to its zones), the bridge's connection state (its Will), and the site's
    scan requests, which the bridge subscribes to. Nothing of another site.
    """
    root = site_root(site)
    writes = ("count/#", "scan/#", "status/+", "frame/#", "bridge/state")
    return [("write", f"{root}{t}") for t in writes] + [("read", f"{root}cmd/+/scan")]
