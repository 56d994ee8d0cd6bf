"""Rendering the console's pages: one Jinja2 environment, the layout, the security headers.

A page is a template that extends ``base.html`` and fills its ``main`` block. A request with
the header ``X-Console-Fragment: 1`` (what ``console.js`` sends when live data changed) gets the
``main`` block alone, so the page swaps its content without reloading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from reconciler.auth.identity import Identity

__all__ = [
    "CSP",
    "FRAGMENT_HEADER",
    "NAV",
    "PAGE_HEADERS",
    "ROOT",
    "Link",
    "render_page",
    "render_template",
]

ROOT = "/console"
FRAGMENT_HEADER = "X-Console-Fragment"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Nothing loads from anywhere but this server; no inline script, no framing."""

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Link:
    """A navigation link: its accessible name, its path and the page key that marks it current."""

    label: str
    path: str
    key: str


NAV = (
    Link("Tonight", f"{ROOT}/", "tonight"),
    Link("Map", f"{ROOT}/map", "map"),
    Link("Discrepancies", f"{ROOT}/discrepancies", "discrepancies"),
    Link("Count tasks", f"{ROOT}/tasks", "tasks"),
    Link("Reports", f"{ROOT}/reports", "reports"),
    Link("Book", f"{ROOT}/book", "book"),
    Link("Gateways", f"{ROOT}/gateways", "gateways"),
)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    request: Request,
    identity: Identity,
    template: str,
    *,
    title: str,
    active: str,
    site: str,
    live: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or its ``main`` block for a fragment request) with the console's headers.

    Args:
        request: The request (a fragment request gets the ``main`` block alone).
        identity: The signed-in user (name, role, CSRF token for the page's script).
        template: The template's file name in ``templates/``.
        title: The page's title.
        active: The :class:`Link` key of the page, marked ``aria-current`` in the navigation.
        site: The site shown in the header.
        live: Space-separated change topics (see :mod:`reconciler.console.live`) that make
            the page refresh its ``main`` block; empty: the page is not live.
        status_code: The HTTP status.
        **context: The template's own variables.
    """
    variables: Mapping[str, Any] = {
        "title": title,
        "active": active,
        "site": site,
        "live": live,
        "nav": NAV,
        "root": ROOT,
        "user": identity.user,
        "role": identity.role.label,
        "role_level": int(identity.role),
        "csrf": identity.csrf_token or "",
        **context,
    }
    page = _ENV.get_template(template)
    if request.headers.get(FRAGMENT_HEADER) == "1":
        block = page.blocks["main"]
        body = "".join(block(page.new_context(dict(variables))))
    else:
        body = page.render(variables)
    return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS)


def render_template(template: str, **context: Any) -> str:
    """A template on its own (the 401 page, parts shared between pages)."""
    return _ENV.get_template(template).render(context)
