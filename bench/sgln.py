"""SGLN-96 encode/decode: our :mod:`edgecount.sgln` against epcpy, correctness and speed per tag.

Correctness, before any timing:

* the SGLN-96 tag-encoding vectors of epcpy's own tests (``../shared/realdata/gs1/
  tds_vectors_epcpy/``, read from there): both encode the URI's fields to the vector's hex and
  decode the hex back to them; each should refuse the vectors that cannot be SGLN-96 (reported, not
  asserted, for epcpy: its 0.1.8 encodes a ``.01`` extension, losing the leading zero);
* ``--tags`` random tags over every partition, filter value and extension range: both must
  give the same 12 bytes, and decoding must give the same fields back.

Then microseconds per tag for each side, in this one run. epcpy's decoded object has no filter
value, so its decode is timed to the pure-identity fields (prefix, reference, extension).

Run: ``.venv/bin/python bench/sgln.py [--tags N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from epcpy.epc_schemes.sgln import SGLN, SGLNFilterValue

from edgecount.sgln import _SGLN_PARTITIONS, decode_sgln96, encode_sgln96

VECTORS = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "realdata"
    / "gs1"
    / "tds_vectors_epcpy"
    / "epcpy_test_vectors.json"
)
Fields = tuple[str, str, int, int]  # company prefix, location reference, extension, filter


def epcpy_encode(fields: Fields) -> bytes:
    prefix, reference, extension, filter_value = fields
    return epcpy_encode_uri(f"urn:epc:id:sgln:{prefix}.{reference}.{extension}", filter_value)


def epcpy_encode_uri(uri: str, filter_value: int = 0) -> bytes:
    scheme, value = SGLN.BinaryCodingScheme.SGLN_96, SGLNFilterValue(str(filter_value))
    return bytes.fromhex(SGLN(uri).hex(binary_coding_scheme=scheme, filter_value=value))


def ours_encode_uri(uri: str) -> bytes:
    """Ours takes the extension as a number: a text that is not one is refused here."""
    prefix, reference, extension = uri.rsplit(":", 1)[1].split(".", 2)
    if not extension.isdigit() or str(int(extension)) != extension:
        raise ValueError(f"SGLN-96 extension must be a number without leading zeros: {extension}")
    return encode_sgln96(prefix, reference, int(extension))


def epcpy_decode(epc: bytes) -> tuple[str, str, int]:
    prefix, reference, extension = SGLN.from_hex(epc.hex()).epc_uri.rsplit(":", 1)[1].split(".")
    return prefix, reference, int(extension)


def ours_decode(epc: bytes) -> tuple[str, str, int]:
    tag = decode_sgln96(epc)
    return tag.company_prefix, tag.location_reference, tag.extension


def realdata_vectors() -> tuple[list[tuple[Fields, bytes]], list[str]]:
    """(fields, hex) of the valid SGLN-96 vectors, and the URIs that must not encode."""
    suite = json.loads(VECTORS.read_text())["tests/epc_schemes/test_sgln.py"][
        "TestSGLNTagEncodable"
    ]
    valid = []
    for case in suite["valid_data"]:
        match = re.fullmatch(r"urn:epc:tag:sgln-96:(\d)\.(\d*)\.(\d*)\.(\d+)", case["tag_uri"])
        if match is not None:
            filt, prefix, ref, ext = match.groups()
            valid.append(((prefix, ref, int(ext), int(filt)), bytes.fromhex(case["hex"])))
    invalid = [
        case["uri"]
        for case in suite["invalid_data"]
        if "SGLN_96" in case["kwargs"]["binary_coding_scheme"]
    ]
    return valid, invalid


def random_fields(count: int, seed: int = 7) -> list[Fields]:
    rng = random.Random(seed)
    tags = []
    for _ in range(count):
        _, prefix_digits, _, ref_digits = rng.choice(_SGLN_PARTITIONS)
        prefix = "".join(rng.choice("0123456789") for _ in range(prefix_digits))
        reference = "".join(rng.choice("0123456789") for _ in range(ref_digits))
        extension = rng.choice((0, rng.randrange(1, 10**6), rng.randrange(1, 1 << 41)))
        tags.append((prefix, reference, extension, rng.randrange(8)))
    return tags


def check(tags: list[Fields]) -> dict[str, Any]:
    """Both implementations on the realdata vectors and the random tags; raises on a mismatch."""
    valid, invalid = realdata_vectors()
    for fields, epc in valid:
        assert encode_sgln96(*fields) == epc == epcpy_encode(fields), fields
        assert decode_sgln96(epc).filter_value == fields[3]
        assert ours_decode(epc) == epcpy_decode(epc) == fields[:3], fields
    accepted: dict[str, list[str]] = {"ours": [], "epcpy": []}
    for uri in invalid:  # an extension SGLN-96 cannot carry: each should refuse
        for side, encode in (("ours", ours_encode_uri), ("epcpy", epcpy_encode_uri)):
            try:
                encode(uri)
            except Exception:
                continue
            accepted[side].append(uri)
    assert not accepted["ours"], accepted
    for fields in tags:
        epc = encode_sgln96(*fields)
        assert epc == epcpy_encode(fields), fields
        assert ours_decode(epc) == epcpy_decode(epc) == fields[:3], fields
    return {
        "realdata_valid": len(valid),
        "realdata_invalid": len(invalid),
        "epcpy_wrongly_accepted": accepted["epcpy"],
        "random": len(tags),
    }


def per_tag_us(work: Callable[[Any], object], items: list[Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tags", type=int, default=5000, help="random tags (default 5000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    tags = random_fields(args.tags)
    counts = check(tags)
    epcs = [encode_sgln96(*fields) for fields in tags]
    figures = {
        "ours_decode_us": per_tag_us(decode_sgln96, epcs),
        "epcpy_decode_us": per_tag_us(epcpy_decode, epcs),
        "ours_encode_us": per_tag_us(lambda f: encode_sgln96(*f), tags),
        "epcpy_encode_us": per_tag_us(epcpy_encode, tags),
    }
    figures["decode_ratio"] = figures["epcpy_decode_us"] / figures["ours_decode_us"]
    figures["encode_ratio"] = figures["epcpy_encode_us"] / figures["ours_encode_us"]
    result = counts | {key: round(value, 2) for key, value in figures.items()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"correct on {counts['realdata_valid']} realdata SGLN-96 vectors,"
        f" and {counts['random']} random tags (both); invalid vectors refused: ours"
        f" {counts['realdata_invalid']}/{counts['realdata_invalid']}, epcpy"
        f" {counts['realdata_invalid'] - len(counts['epcpy_wrongly_accepted'])}"
        f"/{counts['realdata_invalid']} (it encodes {counts['epcpy_wrongly_accepted']})"
    )
    for op in ("decode", "encode"):
        ours, theirs = figures[f"ours_{op}_us"], figures[f"epcpy_{op}_us"]
        ratio = figures[f"{op}_ratio"]
        print(f"{op}: ours {ours:.2f} us/tag, epcpy {theirs:.2f} us/tag ({ratio:.1f} x ours)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
