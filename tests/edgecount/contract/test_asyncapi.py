"""docs/asyncapi.yaml stays a valid AsyncAPI 3.0 document that matches the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgecount import contract

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"

# The design's table: kind -> (QoS, retained), and which side the gateway is on.
EXPECTED = {
    "count": (1, True, "send"),
    "scan": (1, True, "send"),
    "status": (1, True, "send"),
    "cmd_scan": (1, False, "receive"),
    "discrepancy": (1, True, None),
    "adjustment": (1, False, None),
    "deadletter": (1, False, None),
    "pose": (0, False, "receive"),
    "frame": (0, True, "send"),
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    return resolve(doc, node["$ref"]) if isinstance(node, dict) and "$ref" in node else node


def kind_of(address: str) -> str:
    topic = address.replace("{gateway_id}", "gw").format(
        site="s", zone="z", location="l", robot="r"
    )
    return contract.parse_topic(topic).kind


def test_document_basics(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert doc["defaultContentType"] == "application/json"
    for server in doc["servers"].values():
        assert server["protocol"] == "mqtt"
    will = doc["servers"]["site"]["bindings"]["mqtt"]["lastWill"]
    assert (will["qos"], will["retain"]) == (1, True)
    assert kind_of(will["topic"]) == "status"


def test_channels_are_the_contract_topics(doc: dict[str, Any]) -> None:
    kinds = []
    for name, channel in doc["channels"].items():
        address = channel["address"]
        parameters = {p.strip("{}") for p in address.split("/") if p.startswith("{")}
        assert parameters == set(channel["parameters"]), name
        for parameter in channel["parameters"].values():
            assert deref(doc, parameter)["description"]
        assert channel["messages"], name
        kinds.append(kind_of(address))
    assert sorted(kinds) == sorted(contract.TOPICS)


def test_operations_reference_existing_channels_and_messages(doc: dict[str, Any]) -> None:
    seen = {}
    for name, operation in doc["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        channel = resolve(doc, channel_ref)
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
            resolve(doc, message["$ref"])
        binding = operation["bindings"]["mqtt"]
        seen[kind_of(channel["address"])] = (binding["qos"], binding["retain"], operation["action"])
    for kind, (qos, retain, action) in EXPECTED.items():
        if action is None:
            assert kind not in seen
        else:
            assert seen[kind] == (qos, retain, action)


def test_message_payloads_are_the_package_schemas(doc: dict[str, Any]) -> None:
    used = []
    for name, message in doc["components"]["messages"].items():
        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12", name
        ref = payload["schema"]["$ref"]
        path = (DOC.parent / ref).resolve()
        assert path.is_file(), f"{name}: {ref} does not exist"
        schema = json.loads(path.read_text(encoding="utf-8"))
        schema_id = schema["title"]
        assert message["title"] == schema_id
        assert contract.SCHEMA_FILES[schema_id] == path.name
        assert schema == contract.schema_document(schema_id)
        used.append(schema_id)
    assert sorted(used) == sorted(contract.SCHEMA_FILES)


def test_every_message_is_on_a_channel(doc: dict[str, Any]) -> None:
    on_channels = {
        message["$ref"]
        for channel in doc["channels"].values()
        for message in channel["messages"].values()
    }
    assert on_channels == {
        f"#/components/messages/{name}" for name in doc["components"]["messages"]
    }


def test_examples_are_valid_payloads(doc: dict[str, Any]) -> None:
    count = 0
    for message in doc["components"]["messages"].values():
        for example in message.get("examples", []):
            contract.validate(example["payload"])
            assert example["payload"]["schema"] == message["title"]
            count += 1
    assert count >= 4


def test_document_passes_an_asyncapi3_object_model(doc: dict[str, Any]) -> None:
    """Full structural check with the `asyncapi3` package (pydantic models of AsyncAPI 3.0).

    No PyPI package ships the official AsyncAPI JSON Schema; this model is the closest
    offline check. `asyncapi3` is a dev dependency, so this always runs.
    """
    import asyncapi3

    asyncapi3.AsyncAPI3.model_validate(doc)
