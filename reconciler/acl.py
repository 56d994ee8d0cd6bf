"""``edgecount security acl``: the broker's ACL from a spec or from the reconciler's configuration.

The spec and the ACL text are the shared core's (:mod:`edgecount.security`); this module adds
the second source, a reconciler configuration whose ``authorized_gateways`` decides both the
ACL and the reconciler's own check (docs/security.md), and the command that reads either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecount.exitcodes import ExitCode
from edgecount.security import AclSpec, GatewayGrant, acl_text, load_acl_spec
from edgecount.yamlcfg import load_or_report
from reconciler.config import load_reconciler_config

__all__ = ["add_arguments", "run", "spec_from_reconciler"]


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
