"""Long fuzz runs of the parsers (see bench/fuzz/README.md).

Run from the repository root, one target for N seconds::

    .venv/bin/python -m bench.fuzz.run TARGET --seconds 60 [--atheris]

Targets: llrp_codec, llrp_sim, llrp_driver, serial, mqtt. Without ``--atheris`` the inputs
are golden messages / valid payloads with random mutations (byte flips, cuts, splices; for
MQTT the structure-aware mutations of tests/fuzz) and random bytes; with ``--atheris``
(``pip install atheris``) libFuzzer drives the same targets with coverage feedback.
Prints inputs run, units (frames/messages/payloads) seen, rejected (all counted), crashes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecount import contract
from tests.fuzz import mqtt_targets as mqtt
from tests.fuzz import targets as t

Target = Callable[[bytes], t.Outcome]


def _serial(data: bytes) -> t.Outcome:
    cut = data[0] if data else 0
    body = data[1:]
    chunks = [body[i : i + cut + 1] for i in range(0, len(body), cut + 1)]
    return t.serial_receiver(chunks, verify_crc=bool(cut & 1))


def _mqtt(data: bytes) -> t.Outcome:
    return mqtt.mqtt_all(data, mqtt.COMMAND_TOPIC if data[:1] == b"{" else None)


TARGETS: dict[str, Target] = {
    "llrp_codec": t.llrp_codec,
    "llrp_sim": lambda data: t.llrp_sim_session(data[:65536]),
    "llrp_driver": lambda data: t.llrp_driver(data, data[0] % 64 if data else 0),
    "serial": _serial,
    "mqtt": _mqtt,
}


def _serial_corpus() -> list[bytes]:
    from drivers.serial import codec as c

    epc = bytes.fromhex("3034257bf7194e4000003039")
    notice = c.TagNotice.for_epc(epc, -40).encode()
    return [b"\x07" + notice * 3, b"\x00" + c.Ack(0xB6, 0).encode() + notice, b"\x10" + notice]


def corpus(name: str) -> list[bytes]:
    """Valid inputs of a target, to mutate."""
    if name == "serial":
        return _serial_corpus()
    if name == "mqtt":
        return [contract.encode(p) for _, p in mqtt.valid_payloads()]
    return t.llrp_corpus()


def mutate(seed: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Byte flips, inserts, cuts and splices of ``seed``."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(5)
        if kind == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            data.insert(rng.randint(0, len(data)), rng.randrange(256))
        elif kind == 2 and data:
            at = rng.randrange(len(data))
            del data[at : at + rng.randint(1, 16)]
        elif kind == 3:
            data += rng.choice(pool)
        elif data:
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
    return bytes(data)


def run_mutation(name: str, seconds: float, seed: int) -> dict[str, Any]:
    """The built-in mutation fuzzer: returns the tallies."""
    target = TARGETS[name]
    pool = corpus(name)
    payloads = mqtt.valid_payloads()
    rng = random.Random(seed)
    tally = {"inputs": 0, "units": 0, "rejected": 0, "crashes": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        roll = rng.random()
        if name == "mqtt" and roll < 0.6:
            data = mqtt.mutate(rng.choice(payloads)[1], rng, rng.randint(1, 3))
        elif roll < 0.9:
            data = mutate(rng.choice(pool), rng, pool)
        else:
            data = rng.randbytes(rng.randint(0, 300))
        tally["inputs"] += 1
        try:
            out = target(data)
        except Exception:
            tally["crashes"] += 1
            print(f"CRASH on {data[:200].hex()}", file=sys.stderr)
            traceback.print_exc()
            continue
        tally["units"] += out.units
        tally["rejected"] += out.rejected
    return tally


def run_atheris(name: str, seconds: float) -> None:
    """libFuzzer through atheris, seeded with the corpus; a crash ends the run with
    libFuzzer's report (and a ``crash-*`` file holding the input)."""
    atheris: Any = importlib.import_module("atheris")
    atheris.instrument_all()  # coverage feedback from every module loaded (ours and sllurp's)
    target = TARGETS[name]
    tally = {"inputs": 0, "units": 0, "rejected": 0}
    end = time.monotonic() + seconds

    def one(data: bytes) -> None:
        out = target(data)
        tally["inputs"] += 1
        tally["units"] += out.units
        tally["rejected"] += out.rejected
        if time.monotonic() > end:
            print(json.dumps({"target": name, "engine": "atheris", **tally, "crashes": 0}))
            sys.stdout.flush()
            os._exit(0)  # libFuzzer takes SystemExit for a crash

    seeds = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for index, data in enumerate(corpus(name)):
        (seeds / f"seed-{index}").write_bytes(data)
    atheris.Setup([sys.argv[0], "-max_len=4096", str(seeds)], one)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--atheris", action="store_true")
    args = parser.parse_args()
    t.quiet_logs()
    if args.atheris:
        run_atheris(args.target, args.seconds)
        return
    tally = run_mutation(args.target, args.seconds, args.seed)
    print(
        json.dumps({"target": args.target, "engine": "mutation", "seconds": args.seconds, **tally})
    )
    if tally["crashes"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
