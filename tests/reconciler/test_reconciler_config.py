"""The reconciler configuration follows the gateway's conventions: strict, with lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgecount.yamlcfg import ConfigError
from reconciler.config import load_reconciler_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "reconciler.example.yaml"


def test_example_is_valid_and_defaults_hold(tmp_path: Path) -> None:
    config = load_reconciler_config(EXAMPLE)
    assert config.tolerances.C.abs_qty == 1
    assert config.max_recounts == 2
    assert config.planning.capacity == 400
    assert config.database_url.startswith("sqlite:///")
    assert config.database_url.endswith("state/reconciler/reconciler.sqlite3")
    minimal = tmp_path / "r.yaml"
    minimal.write_text("site: s1\n")
    plain = load_reconciler_config(minimal)
    assert plain.tolerances.A.over_pct == 1
    assert plain.api is None


def test_wrong_keys_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("site: s1\ntolerances:\n  A: {over_pct: 1, shrt_pct: 2}\nmax_recounts: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_reconciler_config(path)
    text = [str(issue) for issue in caught.value.issues]
    assert any(f"{path}:3: tolerances.A.shrt_pct: unknown key" in line for line in text)
    assert any(f"{path}:4: max_recounts:" in line for line in text)


def test_commands_report_config_errors_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("site: s1\ndatabse: x\n")
    done = subprocess.run(
        [sys.executable, "-m", "edgecount", "reconcile", "list", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:2: databse: unknown key" in done.stderr


def test_api_sign_in_keys_are_strict(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "site: s1\napi:\n  anonymous: [/health, /discrepancies]\n"
        "  approval_limits: {approver: 50, viewer: 10}\n  signin_limit: {attempts: 0}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_reconciler_config(path)
    text = [str(issue) for issue in caught.value.issues]
    assert any(f"{path}:3: api.anonymous[1]: Input should be" in line for line in text), text
    assert any(f"{path}:4: api.approval_limits.viewer: unknown key" in line for line in text)
    assert any(f"{path}:5: api.signin_limit.attempts:" in line for line in text)
    path.write_text("site: s1\napi: {anonymous: [], approval_limits: {approver: 50}}\n")
    api = load_reconciler_config(path).api
    assert api is not None
    assert (api.anonymous, api.approval_limits.approver, api.session_idle_minutes) == ((), 50, 30)
