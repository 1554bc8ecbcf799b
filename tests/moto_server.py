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
4. Streams that forget, as DynamoDB's do. moto keeps every stream record of a table and every
   shard iterator it ever handed out (each `GetRecords` hands out one more), for the server's
   life: under the soak's steady load its memory grew by about 23 MB a minute. DynamoDB keeps
   records 24 hours and an iterator is good for 15 minutes; here a record is dropped once it is
   older than `KEYWARD_MOTO_STREAM_RETENTION_S` (default 300 s) and an iterator
   `KEYWARD_MOTO_ITERATOR_TTL_S` (default 300 s) after it was handed out, checked at each
   `GetRecords`. The stack's consumers read within a second of a write; a reader whose position
   was dropped starts at the oldest record kept (DynamoDB would answer TrimmedDataAccess), and
   the server says so on stderr.
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
# stream record) once per *item* of a transaction: a bare transaction cost time in proportion to
# the table (237 ms after a few hundred keys; a 76-item import on a few thousand items, 20 s).
# Here a transaction saves only what it touches, as an undo log: before it runs, a deep copy of
# each item it names (or the fact that the item is absent) and the length of each stream shard;
# moto's whole-table copy becomes the table itself. On any failure the saved items are put back,
# the items it created removed, and the shards cut back to their length. A transaction's cost
# no longer depends on the table's size.
import copy as _copy  # noqa: E402

from moto.dynamodb import models as _dynamodb_models  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType as _DynamoType  # noqa: E402
from moto.dynamodb.models.table import Table as _Table  # noqa: E402

_transact_write_items = _dynamodb_models.DynamoDBBackend.transact_write_items


class _NoTableCopy:
    """Stands in for the `copy` module inside `transact_write_items`: a table "copy" is the table
    itself (the undo log restores it); every other copy is a real one."""

    def deepcopy(self, obj, *args, **kwargs):
        if isinstance(obj, _Table):
            return obj
        return _copy.deepcopy(obj, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(_copy, name)


def _touched(backend, transact_items):
    """(table, hash value, range value or None) of every item a transaction names."""
    out = []
    for item in transact_items:
        for kind, op in item.items():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Item") if kind == "Put" else op.get("Key")
            try:
                hash_value = _DynamoType(key[table.hash_key_attr])
                range_value = (
                    None if table.range_key_attr is None else _DynamoType(key[table.range_key_attr])
                )
            except (KeyError, TypeError):
                continue  # moto refuses the transaction itself before writing anything
            out.append((table, hash_value, range_value))
    return out


def _save(touched):
    """The undo log: each touched item's deep copy, or None where there is no item."""
    log = []
    for table, hash_value, range_value in touched:
        if range_value is None:
            current = table.items.get(hash_value)
            partition_existed = True
        else:
            partition = table.items.get(hash_value)
            partition_existed = partition is not None
            current = None if partition is None else partition.get(range_value)
        log.append((table, hash_value, range_value, _copy.deepcopy(current), partition_existed))
    return log


def _restore(log):
    for table, hash_value, range_value, saved, partition_existed in reversed(log):
        if range_value is None:
            if saved is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = saved
            continue
        partition = table.items[hash_value]
        if saved is None:
            partition.pop(range_value, None)
            if not partition and not partition_existed:
                del table.items[hash_value]
        else:
            partition[range_value] = saved


def _transact_write_items_undo(self, transact_items):
    log = _save(_touched(self, transact_items))
    shards = [
        (table.stream_shard, len(table.stream_shard.items))
        for table in self.tables.values()
        if table.stream_shard is not None
    ]
    real = _dynamodb_models.copy
    _dynamodb_models.copy = _NoTableCopy()
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        _restore(log)
        for shard, length in shards:
            del shard.items[length:]
        raise
    finally:
        _dynamodb_models.copy = real


_dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_undo

# ---- 4. streams that forget ----
import time as _time  # noqa: E402

from moto.dynamodb.models import table as _table_models  # noqa: E402
from moto.dynamodbstreams import models as _streams_models  # noqa: E402

_STREAM_RETENTION_S = float(os.environ.get("KEYWARD_MOTO_STREAM_RETENTION_S", "300"))
_ITERATOR_TTL_S = float(os.environ.get("KEYWARD_MOTO_ITERATOR_TTL_S", "300"))
_iterator_born = {}  # iterator arn -> monotonic time it was handed out
_shard_get = _table_models.StreamShard.get
_get_shard_iterator = _streams_models.DynamoDBStreamsBackend.get_shard_iterator
_get_records = _streams_models.DynamoDBStreamsBackend.get_records


def _trim(shard):
    """Drops `shard`'s records older than the retention; the kept ones keep their sequence
    numbers (the shard's start moves up by as many as were dropped). Never inside a transaction:
    only `GetRecords` calls it, and requests run one at a time."""
    now = _table_models.utcnow()
    cut = 0
    for record in shard.items:
        made = record.record["dynamodb"]["ApproximateCreationDateTime"]
        if (now - made).total_seconds() <= _STREAM_RETENTION_S:
            break
        cut += 1
    if cut:
        del shard.items[:cut]
        shard.starting_sequence_number += cut


def _shard_get_kept(self, start, quantity):
    if start < self.starting_sequence_number:
        print(
            f"moto_server: a stream reader asked for record {start}, older than the oldest kept "
            f"({self.starting_sequence_number}, retention {_STREAM_RETENTION_S:g} s); reading from there",
            file=sys.stderr,
        )
        start = self.starting_sequence_number
    return _shard_get(self, start, quantity)


def _expire_iterators(backend):
    now = _time.monotonic()
    for arn in [a for a, born in _iterator_born.items() if now - born > _ITERATOR_TTL_S]:
        del _iterator_born[arn]
        backend.shard_iterators.pop(arn, None)


def _get_shard_iterator_timed(self, *args, **kwargs):
    iterator = _get_shard_iterator(self, *args, **kwargs)
    _iterator_born[iterator.arn] = _time.monotonic()
    return iterator


def _get_records_forgetting(self, iterator_arn, limit):
    shard = self.shard_iterators[iterator_arn].stream_shard
    _trim(shard)
    _expire_iterators(self)
    result = _get_records(self, iterator_arn, limit)
    _iterator_born[result["NextShardIterator"]] = _time.monotonic()
    return result


_table_models.StreamShard.get = _shard_get_kept
_streams_models.DynamoDBStreamsBackend.get_shard_iterator = _get_shard_iterator_timed
_streams_models.DynamoDBStreamsBackend.get_records = _get_records_forgetting

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
