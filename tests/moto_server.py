"""moto_server, without moto's instance tracker.

moto appends every model object it creates to a class-level list (`instances_tracked`, read only
by its dashboard). A transaction deep-copies the whole table first, so every write leaves a full
copy of the table behind: memory grows with the square of the writes (6 GiB after 500
transactions on a table with a stream). Object creation here skips the list; nothing else in
moto changes. Arguments are moto_server's: `python tests/moto_server.py -H 127.0.0.1 -p PORT`.
"""

import sys

from moto.core import common_models


def _untracked_new(cls, *args, **kwargs):
    return object.__new__(cls)


common_models.BaseModel.__new__ = _untracked_new

from moto.server import main  # noqa: E402 (after the patch, as the server imports models)

if __name__ == "__main__":
    sys.exit(main())
