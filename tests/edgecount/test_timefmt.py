"""One time format: the contract's UTC ``Z`` form, and the three parsing strictnesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edgecount import contract, timefmt

PARIS = timezone(timedelta(hours=2))


def test_to_iso_writes_utc_milliseconds_and_z() -> None:
    moment = datetime(2024, 5, 1, 4, 0, 0, 123456, tzinfo=PARIS)
    assert timefmt.to_iso(moment) == "2024-05-01T02:00:00.123Z"
    assert timefmt.to_iso(0) == "1970-01-01T00:00:00.000Z"
    with pytest.raises(ValueError, match="naive datetime"):
        timefmt.to_iso(datetime(2024, 5, 1))


def test_parse_zulu_round_trips_and_refuses_other_forms() -> None:
    now = timefmt.now_iso()
    assert timefmt.to_iso(timefmt.parse_zulu(now)) == now
    with pytest.raises(timefmt.TimeFormatError, match="must be UTC with a 'Z' suffix"):
        timefmt.parse_zulu("2024-05-01T02:00:00+00:00")
    with pytest.raises(timefmt.TimeFormatError, match="is not ISO-8601"):
        timefmt.parse_zulu("yesterdayZ")


def test_the_contract_keeps_its_names_and_error_type() -> None:
    assert contract.to_iso is timefmt.to_iso
    assert contract.parse_iso("2024-05-01T02:00:00.000Z") == datetime(2024, 5, 1, 2, tzinfo=UTC)
    with pytest.raises(contract.ContractError, match="must be UTC"):
        contract.parse_iso("2024-05-01T02:00:00")


def test_parse_keeps_the_zone_and_parse_utc_reads_naive_as_utc() -> None:
    assert timefmt.parse("2024-05-01T04:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert timefmt.parse("2024-05-01T02:00:00").tzinfo is None
    assert timefmt.parse_utc("2024-05-01T04:00:00+02:00") == datetime(2024, 5, 1, 2, tzinfo=UTC)
    assert timefmt.parse_utc("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert timefmt.utc(datetime(2024, 5, 1, 4, tzinfo=PARIS)).tzinfo is UTC
    with pytest.raises(ValueError, match="Invalid isoformat"):
        timefmt.parse_utc("not a time")
