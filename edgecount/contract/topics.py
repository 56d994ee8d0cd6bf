"""Contract topics: building them, parsing them, and checking a payload belongs on one.

Topics live under ``edgecount/v1/{site}/``; :data:`TOPICS` lists every kind with its levels
and the schema of its payloads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from edgecount.contract.common import (
    ADJUSTMENT,
    COUNT,
    DEADLETTER,
    DECISION,
    DISCREPANCY,
    FRAME,
    POSE,
    SCAN,
    SCAN_REQUEST,
    STATUS,
    TOPIC_PREFIX,
    ContractError,
)

MAX_SEGMENT: Final = 128
_BAD_SEGMENT = re.compile(r"[/+#\x00-\x1f\x7f-\x9f]")

# kind -> (topic levels after the site, schema). "{name}" levels are parameters.
TOPICS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "count": (("count", "{zone}", "{location}"), COUNT),
    "scan": (("scan", "{zone}"), SCAN),
    "status": (("status", "{gateway}"), STATUS),
    "cmd_scan": (("cmd", "{gateway}", "scan"), SCAN_REQUEST),
    "discrepancy": (("discrepancy", "{zone}", "{location}"), DISCREPANCY),
    "adjustment": (("adjustment",), ADJUSTMENT),
    "decision": (("decision",), DECISION),
    "deadletter": (("deadletter",), DEADLETTER),
    "pose": (("pose", "{robot}"), POSE),
    "frame": (("frame", "{zone}", "{location}"), FRAME),
}


def check_segment(value: str, what: str = "topic segment") -> str:
    """Return ``value`` if it can be one MQTT topic level, else raise :class:`ContractError`.

    A segment is non-empty, at most 128 characters, encodable as UTF-8, and has no ``/``,
    ``+``, ``#`` or control characters.
    """
    if not isinstance(value, str) or not value:
        raise ContractError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_SEGMENT:
        raise ContractError(f"{what} {value[:40]!r}... is longer than {MAX_SEGMENT} characters")
    bad = _BAD_SEGMENT.search(value)
    if bad:
        raise ContractError(
            f"{what} {value!r} contains {bad.group()!r}; '/', '+', '#' and control "
            "characters are not allowed in a topic level"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContractError(f"{what} {value!r} is not valid UTF-8: {exc.reason}") from None
    return value


def site_root(site: str) -> str:
    """``edgecount/v1/{site}/`` (with the trailing slash)."""
    return f"{TOPIC_PREFIX}/{check_segment(site, 'site')}/"


def site_filter(site: str = "+") -> str:
    """Subscription filter for every topic of ``site`` (``+`` for every site)."""
    if site != "+":
        check_segment(site, "site")
    return f"{TOPIC_PREFIX}/{site}/#"


def _topic(site: str, *levels: tuple[str, str]) -> str:
    return site_root(site) + "/".join(check_segment(value, what) for what, value in levels)


def count_topic(site: str, zone: str, location: str) -> str:
    """``edgecount/v1/{site}/count/{zone}/{location}``."""
    return _topic(site, ("", "count"), ("zone", zone), ("location", location))


def scan_topic(site: str, zone: str) -> str:
    """``edgecount/v1/{site}/scan/{zone}``."""
    return _topic(site, ("", "scan"), ("zone", zone))


def status_topic(site: str, gateway_id: str) -> str:
    """``edgecount/v1/{site}/status/{gateway_id}``."""
    return _topic(site, ("", "status"), ("gateway_id", gateway_id))


def cmd_scan_topic(site: str, gateway_id: str) -> str:
    """``edgecount/v1/{site}/cmd/{gateway_id}/scan``."""
    return _topic(site, ("", "cmd"), ("gateway_id", gateway_id), ("", "scan"))


def frame_topic(site: str, zone: str, location: str) -> str:
    """``edgecount/v1/{site}/frame/{zone}/{location}``."""
    return _topic(site, ("", "frame"), ("zone", zone), ("location", location))


def discrepancy_topic(site: str, zone: str, location: str) -> str:
    """``edgecount/v1/{site}/discrepancy/{zone}/{location}``."""
    return _topic(site, ("", "discrepancy"), ("zone", zone), ("location", location))


def adjustment_topic(site: str) -> str:
    """``edgecount/v1/{site}/adjustment``."""
    return site_root(site) + "adjustment"


def decision_topic(site: str) -> str:
    """``edgecount/v1/{site}/decision``."""
    return site_root(site) + "decision"


def deadletter_topic(site: str) -> str:
    """``edgecount/v1/{site}/deadletter``."""
    return site_root(site) + "deadletter"


def bridge_state_topic(site: str) -> str:
    """``edgecount/v1/{site}/bridge/state``: the site bridge's connection state.

    Not a contract message: Mosquitto publishes it (retained, payload ``1`` connected, ``0``
    not) for the bridge that ``edgecount site bridge`` configures (docs/operations.md).
    """
    return site_root(site) + "bridge/state"


class TopicInfo(NamedTuple):
    """A parsed contract topic: its kind (a key of :data:`TOPICS`), site and parameters."""

    kind: str
    site: str
    params: dict[str, str]

    @property
    def schema(self) -> str:
        """The schema id of payloads on this topic."""
        return TOPICS[self.kind][1]


def parse_topic(topic: str) -> TopicInfo:
    """Parse a contract topic; raise :class:`ContractError` for anything else."""
    levels = topic.split("/")
    if len(levels) < 4 or "/".join(levels[:2]) != TOPIC_PREFIX:
        raise ContractError(f"topic {topic!r} is not under {TOPIC_PREFIX}/{{site}}/")
    site = check_segment(levels[2], "site")
    rest = levels[3:]
    for kind, (pattern, _schema) in TOPICS.items():
        if len(pattern) != len(rest):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, rest, strict=True):
            if want.startswith("{"):
                params[want.strip("{}")] = check_segment(got, want.strip("{}"))
            elif want != got:
                break
        else:
            return TopicInfo(kind, site, params)
    raise ContractError(f"topic {topic!r} matches no topic of contract v1")


def check_topic(topic: str, payload: Mapping[str, Any]) -> TopicInfo:
    """Check that a (valid) payload belongs on ``topic``: schema and identifiers agree."""
    info = parse_topic(topic)
    schema = payload.get("schema")
    if schema != info.schema:
        raise ContractError(f"topic {topic!r} carries {info.schema}, not {schema!r}")
    expected = {"site": info.site, **info.params}
    for field, value in expected.items():
        if field in payload and payload[field] != value:
            raise ContractError(
                f"{field} is {payload[field]!r} but the topic {topic!r} says {value!r}",
                schema=info.schema,
                path=field,
            )
    return info
