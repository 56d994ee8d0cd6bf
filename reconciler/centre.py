"""The centre: one ``reconcile serve`` for many sites, several instances sharing the load.

A central configuration names the sites' own configuration files instead of one ``site``::

    instance_id: centre-1          # one per instance: it is the MQTT client id
    shared_group: centre           # instances of one group split the sites' messages
    mqtt: {host: central-broker, port: 8883, tls: {...}}
    sites: [sites/*.yaml]          # each a reconciler configuration of one site

Each site's file is the one its console, book imports and reports use too (``site``,
``database``, ``database_schema``, ``gateways``, tolerances...). Sites on one PostgreSQL
database each keep their tables in their own schema and share one connection pool here.
What a site file says about MQTT, ``instance_id``, ``shared_group`` and ``api`` is not used
by the centre (its console is ``reconcile console -c`` that site's file).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from edgecount.settings import MqttConfig, Segment, StrictModel
from edgecount.yamlcfg import ConfigError, ConfigIssue, read_yaml, validate_document
from reconciler.config import ReconcilerConfig, load_reconciler_config

__all__ = ["CentreConfig", "MetricsAddress", "SiteFile", "is_centre_document", "load_centre_config"]


class MetricsAddress(StrictModel):
    """Where an instance serves ``/metrics`` and ``/healthz``."""

    host: str = "127.0.0.1"
    port: int = Field(default=9484, ge=0, le=65535)


class CentreConfig(StrictModel):
    """The central configuration file (``sites:`` instead of ``site:``)."""

    instance_id: Segment
    """Required, and different for every instance: the MQTT client id is
    ``edgecount-{instance_id}``, and two instances with one id take each other's session."""
    mqtt: MqttConfig = MqttConfig()
    shared_group: Segment | None = None
    mqtt_session_expiry_seconds: int | None = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    sites: list[str] = Field(min_length=1)
    """Site configuration files, or glob patterns, relative to this file."""
    metrics: MetricsAddress | None = None
    """Serve the instance's ``/metrics`` and ``/healthz`` here (the sites' consoles and REST
    APIs are ``reconcile console`` of each site's file)."""


@dataclass(frozen=True, slots=True)
class SiteFile:
    """One site's configuration, and the file it came from."""

    path: Path
    config: ReconcilerConfig


def is_centre_document(path: Path) -> bool:
    """Whether ``path`` is a central configuration (it has ``sites:``).

    Raises:
        ConfigError: The file cannot be read or is not YAML.
    """
    doc = read_yaml(path)
    return isinstance(doc, dict) and "sites" in doc


def load_centre_config(path: Path) -> tuple[CentreConfig, list[SiteFile]]:
    """Load the central file and every site file it names; every problem is reported at once.

    Raises:
        ConfigError: One issue per problem, each naming file, line and key: the central
            file's own, a pattern that matches no file, any site file's, two files of one
            site, two sites on one database and schema.
    """
    doc = read_yaml(path)
    centre = validate_document(doc, path, CentreConfig)
    lines = _entry_lines(doc)
    issues: list[ConfigIssue] = []
    files: list[Path] = []
    for index, pattern in enumerate(centre.sites):
        where = ConfigIssue(str(path), lines.get(index), f"sites[{index}]", "")
        matched = _expand(path.parent, pattern)
        if not matched:
            issues.append(_issue(where, f"{pattern!r} names no file"))
        files += [m for m in matched if m not in files]
    sites: list[SiteFile] = []
    for file in files:
        try:
            sites.append(SiteFile(file, load_reconciler_config(file)))
        except ConfigError as exc:
            issues += exc.issues
    issues += _clashes(sites)
    if issues:
        raise ConfigError(issues)
    return centre, sites


def _expand(base: Path, pattern: str) -> list[Path]:
    if not glob.has_magic(pattern):
        full = base / pattern
        return [full] if full.is_file() else []
    if Path(pattern).is_absolute():
        anchor = Path(Path(pattern).anchor)
        return sorted(p for p in anchor.glob(pattern[len(anchor.anchor) :]) if p.is_file())
    return sorted(p for p in base.glob(pattern) if p.is_file())


def _entry_lines(doc: object) -> dict[int, int]:
    """Line numbers (1-based) of the entries of ``sites:`` in the YAML document."""
    sites = doc.get("sites") if isinstance(doc, dict) else None
    lc = getattr(sites, "lc", None)
    if lc is None or not isinstance(sites, list):
        return {}
    return {i: lc.item(i)[0] + 1 for i in range(len(sites))}


def _issue(where: ConfigIssue, message: str) -> ConfigIssue:
    return ConfigIssue(where.file, where.line, where.key, message)


def _clashes(sites: list[SiteFile]) -> list[ConfigIssue]:
    """Two files of one site, or two sites sharing one database and schema."""
    issues: list[ConfigIssue] = []
    by_site: dict[str, Path] = {}
    by_store: dict[tuple[str, str | None], SiteFile] = {}
    for site in sites:
        config = site.config
        first = by_site.setdefault(config.site, site.path)
        if first != site.path:
            issues.append(_at(site.path, "site", f"{config.site!r} is configured in {first} too"))
            continue
        if config.database is None:
            issues.append(
                _at(
                    site.path,
                    "database",
                    "give each site of a centre its database (a PostgreSQL URL with"
                    " database_schema, or its own SQLite file)",
                )
            )
            continue
        key = (config.database, config.database_schema)
        other = by_store.setdefault(key, site)
        if other is not site:
            issues.append(
                _at(
                    site.path,
                    "database_schema",
                    f"site {config.site!r} would share its tables with {other.config.site!r}"
                    f" ({other.path}): give each site its own database_schema",
                )
            )
    return issues


def _at(path: Path, key: str, message: str) -> ConfigIssue:
    """An issue on a top-level key of a site file, with the key's line (or the file's start)."""
    doc = read_yaml(path)
    lc = getattr(doc, "lc", None)
    line = lc.key(key)[0] + 1 if lc is not None and key in doc else None
    return ConfigIssue(str(path), line, key, message)
