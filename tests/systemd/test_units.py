"""The systemd units verify cleanly and each service's exposure score is at most 2.0.

``systemd-analyze verify`` checks that ExecStart= is executable, so each unit is rendered with
its ``/opt/edgecount`` prefix pointing at a temporary folder holding an executable
``bin/edgecount``. Unknown keys are only warnings (exit 0): any output fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
PREFIX = "/opt/edgecount"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
MAX_EXPOSURE = 2.0
SERVICES = [
    "edgecount-gateway.service",
    "edgecount-reconciler.service",
    "edgecount-scan@.service",
    "edgecount-sim-llrp.service",
    "edgecount-plan.service",
    "edgecount-report.service",
]
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


@pytest.fixture(autouse=True)
def _analyze_installed() -> None:
    if not Path(ANALYZE).exists():
        pytest.fail("systemd-analyze is not installed: `make test` installs it (make system-tools)")


def render(tmp_path: Path, name: str, instance: str = "Z1", extra: str = "") -> Path:
    """The unit with its prefix under ``tmp_path`` (a template as instance ``instance``)."""
    binary = tmp_path / "bin" / "edgecount"
    if not binary.exists():
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\nexit 0\n")
        binary.chmod(0o755)
    text = (UNITS / name).read_text().replace(PREFIX, str(tmp_path)) + extra
    target = tmp_path / name.replace("@.", f"@{instance}.")
    target.write_text(text)
    return target


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def exposure(unit: Path) -> float:
    done = analyze("security", "--offline=yes", "--no-pager", unit)
    assert done.returncode == 0, done.stderr
    found = EXPOSURE.search(done.stdout)
    assert found is not None, done.stdout
    return float(found.group(1))


def directives(name: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_every_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    names = sorted(p.name for p in UNITS.glob("edgecount-*"))
    assert {"edgecount-scan@.timer", "edgecount-plan.timer", "edgecount-report.timer"} <= set(names)
    units = [render(tmp_path, name) for name in names]
    done = analyze("verify", "--man=no", *units)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert done.stdout.strip() == "", done.stdout


@pytest.mark.parametrize("name", SERVICES)
def test_service_exposure_is_at_most_two(tmp_path: Path, name: str) -> None:
    score = exposure(render(tmp_path, name))
    assert score <= MAX_EXPOSURE, f"{name}: exposure {score}"


def test_usb_device_drop_in_keeps_the_gateway_under_two(tmp_path: Path) -> None:
    drop_in = (UNITS / "examples" / "gateway-usb-devices.conf").read_text()
    unit = render(tmp_path, "edgecount-gateway.service", extra="\n" + drop_in)
    done = analyze("verify", "--man=no", unit)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert exposure(unit) <= MAX_EXPOSURE


def test_gateway_unit_is_a_notify_service_with_a_watchdog_and_credentials() -> None:
    unit = directives("edgecount-gateway.service")
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" in unit
    assert "StartLimitBurst" in unit
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["edgecount"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["LoadCredential"] == ["mqtt-password:/etc/edgecount/credentials/mqtt-password"]
    assert unit["ExecStart"][0].startswith(f"{PREFIX}/bin/edgecount ")


def test_reconciler_unit_is_a_notify_service() -> None:
    unit = directives("edgecount-reconciler.service")
    assert unit["Type"] == ["notify"]
    assert "WatchdogSec" in unit
    assert unit["StateDirectory"] == ["edgecount-reconciler"]
    assert "reconcile serve" in unit["ExecStart"][0]


def test_scan_timer_is_nightly_persistent_and_spread() -> None:
    timer = directives("edgecount-scan@.timer")
    assert timer["Persistent"] == ["true"]
    assert timer["RandomizedDelaySec"] == ["1h"]
    assert timer["OnCalendar"] == ["*-*-* 02:00:00"]
    service = directives("edgecount-scan@.service")
    assert "--zone %i" in service["ExecStart"][0]
    done = analyze("calendar", timer["OnCalendar"][0])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("name", "command", "credential", "calendar"),
    [
        (
            "edgecount-plan",
            "plan -c /etc/edgecount/reconciler.yaml --publish",
            "mqtt-password:/etc/edgecount/credentials/reconciler-mqtt-password",
            "*-*-* 20:00:00",
        ),
        (
            "edgecount-report",
            "report send -c /etc/edgecount/reconciler.yaml",
            "smtp-password:/etc/edgecount/credentials/smtp-password",
            "*-*-* 06:30:00",
        ),
    ],
)
def test_plan_and_report_timers_run_oneshots_as_the_reconciler(
    name: str, command: str, credential: str, calendar: str
) -> None:
    service = directives(f"{name}.service")
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [f"{PREFIX}/bin/edgecount -v {command}"]
    # the reconciler's dynamic user and state directory: its SQLite file stays readable
    reconciler = directives("edgecount-reconciler.service")
    assert service["User"] == ["edgecount-reconciler"]
    assert service["StateDirectory"] == reconciler["StateDirectory"]
    assert service["DynamicUser"] == ["yes"]
    assert service["LoadCredential"] == [credential]
    for key in ("ProtectSystem", "CapabilityBoundingSet", "SystemCallFilter", "PrivateUsers"):
        assert service[key] == reconciler[key], key
    timer = directives(f"{name}.timer")
    assert timer["OnCalendar"] == [calendar]
    assert "Persistent" not in timer  # a late catch-up would scan by day or report the new night
    done = analyze("calendar", calendar)
    assert done.returncode == 0, done.stderr


def test_the_report_unit_outlasts_the_settle_wait_and_the_retries() -> None:
    from reconciler.email_config import EmailConfig

    fields = EmailConfig.model_fields
    settle = fields["settle_timeout_seconds"].default
    retry = fields["retry"].default.total_seconds
    (timeout,) = directives("edgecount-report.service")["TimeoutStartSec"]
    assert timeout.endswith("h")
    assert int(timeout[:-1]) * 3600 > settle + retry
