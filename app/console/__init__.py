"""Console room (an adapter, like ``app.api``): the analysts' web console under ``/console/``.

Server-rendered HTML (Jinja2, autoescaped) over the same core use-cases the REST API calls —
the review desk, the rule book, the list book — never over the HTTP API itself. A session is
a signed cookie naming an API key's name and scopes (never the key); every form carries a
CSRF token tied to the session. One small script of ours adds keyboard shortcuts; every page
works without it. :func:`app.console.app.install` mounts it on the service's application.
"""
