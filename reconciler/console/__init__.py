"""The operator console: server-rendered pages served by the reconciler beside its REST API.

Pages are Jinja2 templates rendered on the server (:mod:`reconciler.console.render`); the one
script (``static/console.js``, ours, no framework, no CDN) sends the console's changes to the
REST API with the session's CSRF token, swaps a page's live part when the server says its data
changed (server-sent events, :mod:`reconciler.console.live`) and binds keyboard shortcuts.
Every page needs a signed-in user (401 otherwise; a browser is sent to ``/signin``).
"""

from reconciler.console.routes import add_console_routes

__all__ = ["add_console_routes"]
