"""The generated ACL and the reconciler's ``authorized_gateways`` key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecount.cli import main
from edgecount.security import AclSpec, acl_text
from edgecount.yamlcfg import ConfigError
from reconciler.cli import make_engine
from reconciler.config import load_reconciler_config


def blocks(text: str) -> dict[str, list[str]]:
    """User → its topic lines."""
    out: dict[str, list[str]] = {}
    user = ""
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.removeprefix("user ")
            out[user] = []
        elif line.startswith("topic "):
            assert user, f"a topic line for anonymous clients: {line}"
            out[user].append(line.removeprefix("topic "))
    return out


def test_each_role_gets_only_its_topics() -> None:
    spec = AclSpec.model_validate(
        {
            "site": "dc1",
            "gateways": {"gw-1": ["A", "B"], "gw-2": {"zones": ["C"], "robots": ["cart-1"]}},
            "wms": ["wms"],
            "operators": ["night-shift"],
            "robots": ["cart-1"],
        }
    )
    acl = blocks(acl_text(spec))
    r = "edgecount/v1/dc1/"
    assert acl["gw-1"] == [
        f"write {r}count/A/#", f"write {r}count/B/#", f"write {r}frame/A/#",
        f"write {r}frame/B/#", f"write {r}scan/A", f"write {r}scan/B",
        f"write {r}status/gw-1", f"read {r}cmd/gw-1/scan",
    ]  # fmt: skip
    assert f"read {r}pose/cart-1" in acl["gw-2"]
    assert all(line.startswith("read ") for line in acl["wms"])
    assert acl["cart-1"] == [f"write {r}pose/cart-1"]
    assert acl["night-shift"] == [
        f"read {r}count/#", f"read {r}scan/#", f"read {r}status/+", f"read {r}bridge/state",
        f"write {r}cmd/+/scan",
    ]  # fmt: skip
    assert f"write {r}cmd/+/scan" in acl["reconciler"]
    assert f"read {r}count/#" in acl["reconciler"]
    assert f"read {r}frame/#" in acl["reconciler"]
    assert f"write {r}frame/C/#" in acl["gw-2"]
    assert not any("frame/" in line for line in acl["wms"] + acl["night-shift"])
    assert acl_text(spec) == acl_text(spec)  # deterministic


def test_a_central_broker_grants_a_site_bridge_its_own_tree_only() -> None:
    acl = blocks(acl_text(AclSpec.model_validate({"site": "dc1", "bridges": ["bridge-dc1"]})))
    r = "edgecount/v1/dc1/"
    assert acl["bridge-dc1"] == [
        f"write {r}count/#", f"write {r}scan/#", f"write {r}status/+", f"write {r}frame/#",
        f"write {r}bridge/state", f"read {r}cmd/+/scan",
    ]  # fmt: skip
    assert sorted(acl) == ["bridge-dc1", "reconciler"]  # no gateway on a central broker


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"wms": ["gw-1"]}, "both gateway and wms"),
        ({"operators": ["wms-x"], "wms": ["wms-x"]}, "both wms and operator"),
        ({"gateways": {"gw-1": {"zones": ["A"], "robots": ["r9"]}}}, "robots not in robots"),
        ({"gateways": {"gw-1": ["A/#"]}}, "pattern"),
        ({"gateways": {"gw-1": []}}, "at least 1"),
        ({"gateways": {}}, "at least one gateway"),
    ],
)
def test_spec_mistakes_are_errors(extra: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AclSpec.model_validate({"site": "dc1", "gateways": {"gw-1": ["A"]}, **extra})


RECONCILER = """\
site: dc1
state_dir: state
mqtt: {username: rec-1, password_file: /run/credentials/edgecount-reconciler/mqtt}
authorized_gateways: {gw-1: [A, B], gw-2: [C]}
"""


def test_cli_generates_from_the_reconciler_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(RECONCILER + "gateways: {C: gw-2}\n", encoding="utf-8")
    out = tmp_path / "acl"
    assert (
        main(["security", "acl", "--reconciler", str(config), "--wms", "wms", "-o", str(out)]) == 0
    )
    acl = blocks(out.read_text(encoding="utf-8"))
    assert list(acl) == ["gw-1", "gw-2", "rec-1", "wms"]
    assert load_reconciler_config(config).authorization() == {
        "gw-1": frozenset({"A", "B"}),
        "gw-2": frozenset({"C"}),
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text("site: dc1\ngateways: {gw-1: [A]}\nwms: [gw-1]\n", encoding="utf-8")
    assert main(["security", "acl", "-c", str(spec)]) == 2
    assert "both gateway and wms" in capsys.readouterr().err


def test_recounts_may_only_be_routed_to_an_authorised_gateway(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(RECONCILER + "gateways: {A: gw-2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="routes zone 'A' to 'gw-2'"):
        load_reconciler_config(config)


def test_without_the_key_every_gateway_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("site: dc1\nstate_dir: state\n", encoding="utf-8")
    assert load_reconciler_config(config).authorization() is None


def test_reconcile_serve_builds_its_engine_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(RECONCILER, encoding="utf-8")
    engine = make_engine(load_reconciler_config(config))
    try:
        assert engine.unauthorized("gw-2", "A") is not None
        assert engine.unauthorized("gw-2", "C") is None
    finally:
        engine.store.close()
