"""mapkv: a persistent memory-mapped key-value store shared by processes.

    db = mapkv.open(path, **options)          # a DB: a MutableMapping of bytes to bytes
    cache = mapkv.open_cache(path, **options) # a Cache shared by worker processes

    with db.begin() as txn:                   # a read transaction, as py-lmdb's
        for key, value in txn.items():        # lazy, one consistent view
            ...

See help(mapkv.DB), help(mapkv.ReadTransaction), help(mapkv.Cache).
"""

import collections.abc as _abc

from mapkv._mapkv import *  # noqa: F401,F403 (the extension's types, functions and errors)
from mapkv._mapkv import DB, __doc__ as _ext_doc, __version__  # noqa: F401

__doc__ = _ext_doc


class _KeysView(_abc.KeysView):
    """db.keys(): iterated lazily through one read transaction."""

    __slots__ = ()

    def __iter__(self):
        return iter(self._mapping)


class _ValuesView(_abc.ValuesView):
    """db.values(): iterated lazily through one read transaction."""

    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_values()


class _ItemsView(_abc.ItemsView):
    """db.items(): (key, value) pairs, iterated lazily through one read transaction."""

    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_items()


def _keys(self):
    """A view of the keys: len(), `in`, and lazy iteration (through a read transaction)."""
    return _KeysView(self)


def _values(self):
    """A view of the values, iterated lazily (through a read transaction)."""
    return _ValuesView(self)


def _items(self):
    """A view of the (key, value) pairs, iterated lazily (through a read transaction)."""
    return _ItemsView(self)


DB.keys = _keys
DB.values = _values
DB.items = _items
_abc.MutableMapping.register(DB)

__all__ = [name for name in dir() if not name.startswith("_")] + ["__version__"]
