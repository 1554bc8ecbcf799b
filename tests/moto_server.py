"""moto_server, fixed for long and concurrent runs, and recording who called what.

Run: `.venv/bin/python tests/moto_server.py -H 127.0.0.1 -p PORT` (what `ControlPlane::start`
does); the arguments are moto_server's. Three changes to moto's own server, nothing else:

1. No instance tracker. moto appends every model object it creates to a class-level list
   (`instances_tracked`, read only by its dashboard). A transaction deep-copies the whole table
   first, so every write left a full copy of the table alive: memory grew with the square of the
   writes (6 GiB after 500 transactions on a table with a stream).
2. One request at a time. moto's backend is not thread-safe: concurrent transactions failed
   with `RuntimeError: dictionary changed size during iteration` (HTTP 500) and could cancel
   each other with the wrong reason. Requests still arrive on werkzeug's threads (keep-alive
   works) but are handled under one lock, as DynamoDB serializes conflicting transactions.
3. An action log. With `KEYWARD_AWS_ACTIONS_LOG` set to a file, every request that a Keyward
   function makes (its SDK user agent carries `app/<function>`) appends one JSON line per IAM
   action it needs, each distinct line once: `{"function", "action", "resource", "via"}`. moto
   does not enforce IAM, so `cargo xtask test` compares these lines with each function's policy
   in the template (`xtask/src/iam.rs`). A transaction is authorised item by item
   (`TransactWriteItems` is not an IAM action), so it is written as its items' actions with
   `"via": "TransactWriteItems"`; a batch (`BatchWriteItem`) is an IAM action of its own.
"""

import io
import json
import os
import re
import sys
import threading

from moto import server
from moto.core import common_models


def _untracked_new(cls, *args, **kwargs):
    return object.__new__(cls)


common_models.BaseModel.__new__ = _untracked_new


# moto 5.2 snapshots a table for rollback by deep-copying the whole table (every item and
# stream record) once per *item* of a transaction: a 76-item import transaction on a table of a
# few thousand items took 20 s. The snapshot here is copy-on-write: the table's item maps are
# copied shallowly (puts and deletes replace entries, so the snapshot keeps the old ones), the
# items a transaction updates in place are deep-copied, and the stream shard is shared and cut
# back to its length before the transaction when it is rolled back.
import copy as _copy  # noqa: E402
from collections import defaultdict as _defaultdict  # noqa: E402

from moto.dynamodb import models as _dynamodb_models  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType as _DynamoType  # noqa: E402
from moto.dynamodb.models.table import Table as _Table  # noqa: E402

_transact_write_items = _dynamodb_models.DynamoDBBackend.transact_write_items


def _snapshot(table, updated_keys):
    clone = _copy.copy(table)
    clone.items = _defaultdict(dict)
    for hash_key, value in table.items.items():
        clone.items[hash_key] = dict(value) if isinstance(value, dict) else value
    for key in updated_keys:
        hash_value = _DynamoType(key[table.hash_key_attr])
        if table.range_key_attr is None:
            if hash_value in clone.items:
                clone.items[hash_value] = _copy.deepcopy(clone.items[hash_value])
            continue
        range_value = _DynamoType(key[table.range_key_attr])
        partition = clone.items.get(hash_value)
        if partition is not None and range_value in partition:
            partition[range_value] = _copy.deepcopy(partition[range_value])
    return clone


class _Snapshots:
    """Stands in for the `copy` module inside one `transact_write_items` call."""

    def __init__(self, updated):
        self._updated = updated
        self._copies = {}

    def deepcopy(self, obj, *args, **kwargs):
        if not isinstance(obj, _Table):
            return _copy.deepcopy(obj, *args, **kwargs)
        if id(obj) not in self._copies:
            self._copies[id(obj)] = _snapshot(obj, self._updated.get(obj.name, []))
        return self._copies[id(obj)]

    def __getattr__(self, name):
        return getattr(_copy, name)


def _transact_write_items_cow(self, transact_items):
    updated = {}
    for item in transact_items:
        for kind, op in item.items():
            if kind == "Update":
                updated.setdefault(op.get("TableName"), []).append(op.get("Key", {}))
    shards = {
        name: (table.stream_shard, len(table.stream_shard.items))
        for name, table in self.tables.items()
        if table.stream_shard is not None
    }
    real = _dynamodb_models.copy
    _dynamodb_models.copy = _Snapshots(updated)
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for shard, length in shards.values():
            del shard.items[length:]
        raise
    finally:
        _dynamodb_models.copy = real


_dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_cow

_lock = threading.Lock()
_run_simple = server.run_simple


_ACTIONS_LOG = os.environ.get("KEYWARD_AWS_ACTIONS_LOG")
_written = set()  # each distinct line once: the check needs the set, not the count
_APP = re.compile(r"(?:^|\s)app/([A-Za-z0-9._-]+)")

# The IAM action of each item kind of a transaction.
_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _caller(environ):
    """The function named by the SDK's app id, or None (the tests' own clients have none)."""
    for header in ("HTTP_X_AMZ_USER_AGENT", "HTTP_USER_AGENT"):
        found = _APP.search(environ.get(header, ""))
        if found:
            return found.group(1)
    return None


def _body(environ):
    """The request body, read once and put back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _table(name, index=None):
    return f"dynamodb:table/{name}" + (f"/index/{index}" if index else "")


def _actions(target, body):
    """(action, resource, via) for each IAM action the request `target` with `body` needs."""
    service, _, operation = target.partition(".")
    if service.startswith("DynamoDBStreams"):
        return [(f"dynamodb:{operation}", f"dynamodb:stream/{body.get('StreamArn', '')}", None)]
    if service.startswith("DynamoDB"):
        if operation == "TransactWriteItems":
            out = []
            for item in body.get("TransactItems", []):
                for kind, action in _TRANSACT_WRITE.items():
                    if kind in item:
                        table = _table(item[kind].get("TableName", ""))
                        out.append((f"dynamodb:{action}", table, operation))
            return out
        if operation == "TransactGetItems":
            return [
                ("dynamodb:GetItem", _table(item["Get"].get("TableName", "")), operation)
                for item in body.get("TransactItems", [])
                if "Get" in item
            ]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", _table(t), None) for t in body.get("RequestItems", {})]
        table = _table(body.get("TableName", ""), body.get("IndexName"))
        return [(f"dynamodb:{operation}", table, None)]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", f"secretsmanager:{body.get('SecretId', '')}", None)]
    return [(f"{service}:{operation}", "*", None)]


def _record(environ):
    target = environ.get("HTTP_X_AMZ_TARGET")
    function = _caller(environ)
    if not (_ACTIONS_LOG and target and function):
        return
    try:
        body = json.loads(_body(environ) or b"{}")
    except ValueError:
        body = {}
    lines = []
    for action, resource, via in _actions(target, body):
        line = json.dumps({"function": function, "action": action, "resource": resource, "via": via})
        if line not in _written:
            _written.add(line)
            lines.append(line + "\n")
    if lines:
        with open(_ACTIONS_LOG, "a", encoding="utf-8") as log:
            log.writelines(lines)


def _serialized(app):
    def handle(environ, start_response):
        with _lock:
            _record(environ)
            # Build the whole body under the lock: moto's responses are small.
            return list(app(environ, start_response))

    return handle


def _run_simple_serialized(hostname, port, application, *args, **kwargs):
    return _run_simple(hostname, port, _serialized(application), *args, **kwargs)


server.run_simple = _run_simple_serialized

if __name__ == "__main__":
    sys.exit(server.main())
