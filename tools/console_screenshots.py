"""Screenshots of every console page for docs/console.md, from a demo night.

Runs ``edgecount demo --size tiny`` into a temporary state directory, adds what a night that
still needs people looks like (counts that differ from the book, so discrepancies await
approval; an incomplete count; a manual count task), serves the console on it
(``edgecount reconcile console``) and photographs each page in Debian's chromium: the desktop
at 1280 x 800 and the phone pages at 390 x 844. Writes ``docs/console/*.jpg``.

Run: ``.venv/bin/python tools/console_screenshots.py [--out docs/console]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

from edgecount import contract
from reconciler.engine import Engine
from reconciler.rules import TolerancePolicy
from reconciler.store import open_store

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EDGECOUNT = [sys.executable, "-m", "edgecount"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def demo_night(state: Path) -> dict[str, Any]:
    """Run the tiny demo; its figures (with the console's config, user and password)."""
    done = subprocess.run(
        [*EDGECOUNT, "demo", "--json", "--size", "tiny", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def open_work(state: Path, site: str) -> list[str]:
    """Counts that differ from the book at a few locations, and one incomplete: returns them."""
    store = open_store(f"sqlite:///{state / 'reconciler.sqlite3'}")
    try:
        engine = Engine(store, site, TolerancePolicy(), max_recounts=0)
        book = sorted(_book(store))
        chosen = book[:4]
        now = datetime.now(UTC)  # after the demo night: these are the newest counts
        counts = []
        for n, (location, sku, qty) in enumerate(chosen):
            draft = contract.count_payload(
                gateway="screens",
                site=site,
                zone=location.split("-")[0],
                location=location,
                scan_id="screens-1",
                items=[{"sku": sku, "qty": max(qty - 1 - n, 0)}],
                observed_at=now,
                complete=n != 3,
            )
            counts.append(contract.CountMessage.from_payload(contract.with_sequence(draft, n + 1)))
        engine.on_counts(store.record_counts(counts, datetime.now(UTC)))
        return [location for location, _sku, _qty in chosen]
    finally:
        store.close()


def _book(store: Any) -> list[tuple[str, str, int]]:
    import sqlalchemy as sa

    from reconciler import schema as t

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.book.c.location, t.book.c.sku, t.book.c.qty)).all()
    return [(r.location, r.sku, int(r.qty)) for r in rows if r.qty > 2]


def serve(config: str) -> tuple[subprocess.Popen[str], str]:
    """``reconcile console`` on a free port; the process and its URL."""
    process = subprocess.Popen(
        [*EDGECOUNT, "reconcile", "console", "-c", config, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    return process, first.split()[1].rstrip("/")


def sign_in(page: Page, user: str, password: str) -> None:
    """Through the sign-in page."""
    page.goto("/signin?next=/console/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        figures = demo_night(state)
        locations = open_work(state, "demo")
        process, url = serve(figures["console_config"])
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                session = client.post(
                    "/signin",
                    json={"username": figures["console_user"],
                          "password": figures["console_password"]},
                )  # fmt: skip
                client.headers["X-CSRF-Token"] = session.json()["csrf_token"]
                zone = locations[0].split("-")[0]
                client.post("/tasks", json={"zone": zone, "location": locations[0]})
            shots = [
                ("tonight", "/console/", DESKTOP),
                ("map", "/console/map", DESKTOP),
                ("location", f"/console/locations/{zone}/{locations[0]}", DESKTOP),
                ("discrepancies", "/console/discrepancies", DESKTOP),
                ("tasks", "/console/tasks", DESKTOP),
                ("tasks-phone", "/console/tasks", PHONE),
                ("tonight-phone", "/console/", PHONE),
                ("reports", "/console/reports", DESKTOP),
                ("book", "/console/book", DESKTOP),
                ("gateways", "/console/gateways", DESKTOP),
            ]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for name, path, viewport in shots:
                    context = browser.new_context(base_url=url, viewport=viewport)
                    page = context.new_page()
                    sign_in(page, figures["console_user"], figures["console_password"])
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    target = args.out / f"{name}.jpg"
                    # a location's page: the whole of it, down to the camera frame
                    whole = name == "location"
                    page.screenshot(path=str(target), type="jpeg", quality=80, full_page=whole)
                    print(f"{target}  {target.stat().st_size // 1024} KiB")
                    context.close()
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
