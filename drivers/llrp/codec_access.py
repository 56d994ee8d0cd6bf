"""LLRP AccessSpec parameters (ADD_ACCESSSPEC, GET_ACCESSSPECS_RESPONSE)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from drivers.llrp.codec_base import RawParam, bitv, fail, many, opt, tlv
from drivers.llrp.codec_params import AccessReportSpec, OpaqueParam
from drivers.llrp.codec_types import ParamType, StatusCode

P = ParamType


@dataclass(frozen=True, slots=True)
class C1G2TargetTag:
    """C1G2TargetTag: memory bank, pointer, mask and data a tag must match."""

    mb: int = 1
    match: bool = True
    pointer: int = 0
    mask_bits: int = 0
    mask: bytes = b""
    data_bits: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        """Encode the parameter."""
        head = struct.pack(">BH", ((self.mb & 3) << 6) | (int(self.match) << 5), self.pointer)
        return tlv(
            P.C1G2_TARGET_TAG,
            head,
            bitv(self.mask_bits, self.mask),
            bitv(self.data_bits, self.data),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        bits = cur.u8()
        pointer = cur.u16()
        mask_bits, mask = cur.bitv()
        data_bits, data = cur.bitv()
        return cls(bits >> 6, bool(bits & 0x20), pointer, mask_bits, mask, data_bits, data)


@dataclass(frozen=True, slots=True)
class C1G2Read:
    """C1G2Read OpSpec: read ``word_count`` words from bank ``mb`` at ``word_pointer``."""

    op_spec_id: int = 1
    access_password: int = 0
    mb: int = 3
    word_pointer: int = 0
    word_count: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.C1G2_READ,
            struct.pack(
                ">HIBHH",
                self.op_spec_id,
                self.access_password,
                (self.mb & 3) << 6,
                self.word_pointer,
                self.word_count,
            ),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        return cls(cur.u16(), cur.u32(), cur.u8() >> 6, cur.u16(), cur.u16())


OpSpec = C1G2Read | OpaqueParam

# C1G2 Read, Write, Kill, Lock, BlockErase, BlockWrite (1.0.1); 1.1 adds 357-359.
_OP_SPEC_TYPES = (341, 342, 343, 344, 346, 347, 357, 358, 359)


@dataclass(frozen=True, slots=True)
class AccessCommand:
    """AccessCommand: a C1G2TagSpec (1-2 target tags) and the operations to run."""

    targets: tuple[C1G2TargetTag, ...] = (C1G2TargetTag(),)
    op_specs: tuple[OpSpec, ...] = (C1G2Read(),)

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.ACCESS_COMMAND, tlv(P.C1G2_TAG_SPEC, many(self.targets)), many(self.op_specs))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter (OpSpecs other than C1G2Read are kept as bytes)."""
        items = raw.cursor().params()
        tag_spec = items.one(P.C1G2_TAG_SPEC).cursor().params()
        targets = tuple(C1G2TargetTag.decode(p) for p in tag_spec.many(P.C1G2_TARGET_TAG))
        tag_spec.finish()
        ops: list[OpSpec] = [
            C1G2Read.decode(item) if item.ptype == P.C1G2_READ else OpaqueParam.decode(item)
            for item in items.many(*_OP_SPEC_TYPES)
        ]
        items.finish()
        if not targets or not ops:
            fail(
                "AccessCommand needs a target tag and an OpSpec",
                StatusCode.P_MISSING_PARAMETER,
                raw.ptype,
            )
        return cls(targets, tuple(ops))


@dataclass(frozen=True, slots=True)
class AccessSpec:
    """AccessSpec: tag access operations bound to antennas and ROSpecs (0 = any)."""

    access_spec_id: int
    antenna_id: int = 0
    protocol_id: int = 1
    enabled: bool = False
    rospec_id: int = 0
    stop_trigger_type: int = 0
    operation_count: int = 0
    command: AccessCommand = AccessCommand()
    report_spec: AccessReportSpec | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        head = struct.pack(
            ">IHBBI",
            self.access_spec_id,
            self.antenna_id,
            self.protocol_id,
            int(self.enabled) << 7,
            self.rospec_id,
        )
        stop = tlv(
            P.ACCESS_SPEC_STOP_TRIGGER,
            struct.pack(">BH", self.stop_trigger_type, self.operation_count),
        )
        return tlv(P.ACCESS_SPEC, head, stop, self.command.encode(), opt(self.report_spec))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        spec_id, antenna, protocol = cur.u32(), cur.u16(), cur.u8()
        enabled, rospec_id = bool(cur.u8() & 0x80), cur.u32()
        params = cur.params()
        stop = params.one(P.ACCESS_SPEC_STOP_TRIGGER).cursor()
        stop_type, count = stop.u8(), stop.u16()
        command = AccessCommand.decode(params.one(P.ACCESS_COMMAND))
        report = params.opt(P.ACCESS_REPORT_SPEC)
        params.finish()
        return cls(
            spec_id,
            antenna,
            protocol,
            enabled,
            rospec_id,
            stop_type,
            count,
            command,
            AccessReportSpec.decode(report) if report else None,
        )
