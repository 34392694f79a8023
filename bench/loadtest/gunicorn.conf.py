"""gunicorn settings of the load test (bench/loadtest/run.py passes `-c` this file).

With `--preload` the master imports the application once; here it also imports every
URL module (and so every view and what the views import) before forking, so that the
workers share those pages of memory and none spends its first request importing them.
"""


def _walk(patterns) -> int:
    n = 0
    for pattern in patterns:
        nested = getattr(pattern, "url_patterns", None)
        n += _walk(nested) if nested is not None else 1
    return n


def when_ready(server):
    from django.db import connections
    from django.urls import get_resolver

    n = _walk(get_resolver().url_patterns)
    connections.close_all()  # no connection crosses the fork
    server.log.info("loadtest: %d URL patterns imported before the fork", n)
