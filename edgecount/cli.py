"""The ``edgecount`` command line.

Each sub-command lives in the module that implements it and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). This module only wires
them together, so ``edgecount --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from edgecount import __version__, logs
from edgecount.exitcodes import ExitCode

# (command path, module, help). The module provides add_arguments() and run().
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("gateway", "validate"), "gateway.cli", "check a gateway configuration file"),
    (("gateway", "run"), "gateway.cli", "run the gateway daemon"),
    (("gateway", "scan-request"), "gateway.scan_request", "ask the running daemon for a scan"),
    (("scan",), "gateway.cli", "run one zone scan now and print the counts"),
    (("sim", "llrp"), "simulators.llrp.cli", "run an LLRP reader simulator"),
    (("sim", "camera"), "simulators.camera.cli", "render shelf images or serve a shelf camera"),
    (("sim", "serial"), "simulators.serial.cli", "run a serial UHF module simulator"),
    (("vision", "count"), "gateway.vision.cli", "count items per location in a shelf image"),
    (("models", "train"), "models.cli", "train the shelf detector on simulated shelves"),
    (("models", "export"), "models.cli", "export trained weights to ONNX"),
    (("models", "quantize"), "models.cli", "quantise an exported detector to INT8"),
    (("models", "eval"), "models.evaluate", "measure counting accuracy on a held-out set"),
    (("models", "finetune"), "models.finetune", "fine-tune the detector on a site's shelves"),
    (("models", "prelabel"), "models.prelabel", "draft YOLO labels for a person to correct"),
    (("models", "collect"), "gateway.vision.collect", "save frames from a configured camera"),
    (("reconcile", "serve"), "reconciler.cli", "run the reconciliation service"),
    (("reconcile", "console"), "reconciler.cli", "serve the console and REST API (no broker)"),
    (("reconcile", "list"), "reconciler.cli", "list discrepancies"),
    (("reconcile", "approve"), "reconciler.cli", "approve a discrepancy (adjusts the book)"),
    (("reconcile", "reject"), "reconciler.cli", "reject a discrepancy"),
    (("reconcile", "report"), "reconciler.cli_report", "write a reconciliation report"),
    (("plan",), "reconciler.cli_report", "plan tonight's cycle counts (and send the requests)"),
    (("book", "import"), "reconciler.cli_book", "import a book snapshot CSV (dry run, checks)"),
    (("book", "movements"), "reconciler.cli_book", "import a movement log CSV (idempotent)"),
    (("demo",), "edgecount.demo", "run the whole pipeline on embedded defaults"),
    (("users", "add"), "reconciler.cli_users", "add a user of the REST API and the console"),
    (("users", "passwd"), "reconciler.cli_users", "set a user's password (ends their sessions)"),
    (("users", "list"), "reconciler.cli_users", "list users and their roles"),
    (("users", "remove"), "reconciler.cli_users", "remove a user with their tokens and sessions"),
    (("users", "token"), "reconciler.cli_users", "make an API token for a user (shown once)"),
    (("users", "tokens"), "reconciler.cli_users", "list API tokens"),
    (("users", "revoke"), "reconciler.cli_users", "revoke an API token"),
    (("security", "acl"), "reconciler.acl", "generate the Mosquitto ACL (per-gateway topics)"),
    (("epcis", "export"), "reconciler.epcis.cli", "write complete counts as an EPCIS 2.0 document"),
    (("epcis", "validate"), "reconciler.epcis.cli", "check EPCIS 2.0 JSON-LD files"),
    (("epcis", "send"), "reconciler.epcis.cli", "send a scan to the EPCIS capture interface"),
    (("report", "send"), "reconciler.cli_mail", "e-mail the night's report once its scans settle"),
    (("site", "bridge"), "edgecount.sitebridge", "write a site broker's bridge to the centre"),
)

VALUE_OPTIONS = frozenset({"--log-format"})
"""Global options whose value is the next word (not a command name)."""


def _chosen(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The command path named in ``argv`` (options skipped), if any."""
    words: list[str] = []
    skip = False
    for word in argv:
        if skip or word.startswith("-"):
            skip = word in VALUE_OPTIONS  # the next word is this option's value
            continue
        words.append(word)
    for path, _module, _help in COMMANDS:
        if tuple(words[: len(path)]) == path:
            return path
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Build the argument parser.

    Only the module of the command named in ``argv`` is imported (to add its arguments), so
    ``edgecount --help`` and every command stay fast and independent of each other.
    """
    chosen = _chosen(argv)
    parser = argparse.ArgumentParser(
        prog="edgecount",
        description="Unattended warehouse inventory counting.",
    )
    parser.add_argument("--version", action="version", version=f"edgecount {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=None,
        help="text, or json: one object per line for journald"
        " (default: $EDGECOUNT_LOG_FORMAT, else text)",
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups[()] = root
    for path, module_name, help_text in COMMANDS:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                group_parser = groups[prefix[:-1]].add_parser(
                    prefix[-1], help=f"{prefix[-1]} commands"
                )
                groups[prefix] = group_parser.add_subparsers(
                    dest="_".join(prefix), metavar="COMMAND", required=True
                )
        sub = groups[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        if path != chosen:
            continue
        module = importlib.import_module(module_name)
        add_arguments = getattr(module, f"add_{'_'.join(path)}_arguments", None)
        if add_arguments is None:
            add_arguments = module.add_arguments
        add_arguments(sub)
        handler = getattr(module, f"run_{'_'.join(path)}", None) or module.run
        sub.set_defaults(handler=handler)
    return parser


def configure_logging(verbosity: int, log_format: logs.LogFormat | None = None) -> None:
    """Log to stderr; -v for INFO, -vv for DEBUG; as text or JSON lines."""
    level = logging.WARNING - 10 * min(verbosity, 2)
    logs.configure(level, log_format)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgecount`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_format)
    try:
        status: int = args.handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``edgecount … | head``): end quietly, as a shell tool killed
        # by SIGPIPE would (128 + 13). Python's recipe: point stdout at devnull so the flush
        # at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE
    return status
