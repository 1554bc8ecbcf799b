"""moto_server, fixed for long and concurrent runs; arguments are moto_server's.

Run: `.venv/bin/python tests/moto_server.py -H 127.0.0.1 -p PORT` (what `ControlPlane::start`
does). Two changes to moto's own server, nothing else:

1. No instance tracker. moto appends every model object it creates to a class-level list
   (`instances_tracked`, read only by its dashboard). A transaction deep-copies the whole table
   first, so every write left a full copy of the table alive: memory grew with the square of the
   writes (6 GiB after 500 transactions on a table with a stream).
2. One request at a time. moto's backend is not thread-safe: concurrent transactions failed
   with `RuntimeError: dictionary changed size during iteration` (HTTP 500) and could cancel
   each other with the wrong reason. Requests still arrive on werkzeug's threads (keep-alive
   works) but are handled under one lock, as DynamoDB serializes conflicting transactions.
"""

import sys
import threading

from moto import server
from moto.core import common_models


def _untracked_new(cls, *args, **kwargs):
    return object.__new__(cls)


common_models.BaseModel.__new__ = _untracked_new

_lock = threading.Lock()
_run_simple = server.run_simple


def _serialized(app):
    def handle(environ, start_response):
        with _lock:
            # Build the whole body under the lock: moto's responses are small.
            return list(app(environ, start_response))

    return handle


def _run_simple_serialized(hostname, port, application, *args, **kwargs):
    return _run_simple(hostname, port, _serialized(application), *args, **kwargs)


server.run_simple = _run_simple_serialized

if __name__ == "__main__":
    sys.exit(server.main())
