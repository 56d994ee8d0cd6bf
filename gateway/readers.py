"""Build drivers from the configuration (the one place that maps config onto driver settings)."""

from __future__ import annotations

from drivers.base import Reader
from drivers.llrp.driver import LlrpReader, LlrpSettings
from drivers.serial.driver import SerialReader, SerialReaderSettings
from gateway.config import SESSION_PRESETS, GatewayConfig, LlrpReaderConfig, SerialReaderConfig


def llrp_settings(reader: LlrpReaderConfig) -> LlrpSettings:
    """Driver settings of one configured LLRP reader."""
    preset = SESSION_PRESETS[reader.preset]
    return LlrpSettings(
        name=reader.name,
        host=reader.host,
        port=reader.port,
        antennas=tuple(sorted(reader.antennas)),
        tx_power_dbm=reader.tx_power_dbm,
        session=preset["session"],
        tag_population=preset["tag_population"],
        keepalive_seconds=reader.keepalive_seconds,
        connect_timeout_seconds=reader.connect_timeout_seconds,
        report_every_n_tags=reader.report_every_n_tags,
        queue_size=reader.queue_size,
        overflow=reader.overflow,
    )


def serial_settings(reader: SerialReaderConfig) -> SerialReaderSettings:
    """Driver settings of one configured serial module."""
    return SerialReaderSettings(
        name=reader.name,
        url=reader.url,
        baudrate=reader.baudrate,
        tx_power_dbm=reader.tx_power_dbm,
        watchdog_seconds=reader.watchdog_seconds,
        command_timeout_seconds=reader.command_timeout_seconds,
        queue_size=reader.queue_size,
    )


def build_reader(reader: LlrpReaderConfig | SerialReaderConfig) -> Reader:
    """The driver of one configured reader, not yet started."""
    if isinstance(reader, SerialReaderConfig):
        return SerialReader(serial_settings(reader))
    return LlrpReader(llrp_settings(reader))


def build_readers(config: GatewayConfig, names: list[str] | None = None) -> dict[str, Reader]:
    """Drivers for the named readers (all when ``names`` is None), not yet started."""
    wanted = names if names is not None else [reader.name for reader in config.readers]
    return {name: build_reader(config.reader(name)) for name in wanted}
