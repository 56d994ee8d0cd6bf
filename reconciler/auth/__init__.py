"""Who may use the reconciler's REST API: users, roles, sessions, API tokens.

Every request is made by an :class:`~reconciler.auth.identity.Identity`: a person signed in
with a session cookie (:mod:`~reconciler.auth.sessions`, guarded by a CSRF token), or a machine
client with a bearer token (:mod:`~reconciler.auth.tokens`, limited by its scopes). Users, their
argon2 password hashes, tokens and sessions live in the reconciler's database
(:mod:`~reconciler.auth.users`); :mod:`~reconciler.auth.dependencies` turns all of it into
FastAPI dependencies, and :mod:`~reconciler.auth.pages` serves the sign-in page.
See docs/security.md ("The REST API").
"""
