"""Tests of the Python package mapkv (src/python), run by ctest (label python) with PYTHONPATH
naming the directory where the build assembles the package:

    ctest --test-dir build -L python --output-on-failure
    PYTHONPATH=build/python python3 tests/python/test_mapkv.py -v
"""

import array
import ast
import builtins
import collections.abc
import datetime
import multiprocessing
import os
import pickle
import shutil
import stat
import sys
import tempfile
import threading
import time
import unittest
import uuid
import warnings

import mapkv

# A database of format version 1, whose read transactions hold the shared lock (the engine's
# golden file, in the source tree beside this test).
GOLDEN_V1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                         "data", "golden", "v1", "sample.mapkv")


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mapkv-py-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name="db.mapkv"):
        return os.path.join(self.dir, name)


class MappingTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.db = mapkv.open(self.path())

    def tearDown(self):
        self.db.close()
        super().tearDown()

    def test_set_get_contains_len(self):
        db = self.db
        self.assertEqual(len(db), 0)
        db[b"a"] = b"1"
        db[b"b"] = b""
        db.put(b"c\x00d", b"\x00\xff" * 1000)
        self.assertEqual(db[b"a"], b"1")
        self.assertEqual(db[b"b"], b"")
        self.assertEqual(db[b"c\x00d"], b"\x00\xff" * 1000)
        self.assertIs(type(db[b"a"]), bytes)
        self.assertIn(b"a", db)
        self.assertNotIn(b"zz", db)
        self.assertEqual(len(db), 3)
        db[b"a"] = b"2"  # overwrite
        self.assertEqual(db[b"a"], b"2")
        self.assertEqual(len(db), 3)

    def test_missing_key_is_key_error(self):
        with self.assertRaises(KeyError) as cm:
            self.db[b"absent"]
        self.assertIsInstance(cm.exception, mapkv.NotFoundError)
        self.assertIsInstance(cm.exception, mapkv.Error)
        self.assertEqual(cm.exception.args, (b"absent",))

    def test_get_with_default(self):
        self.db[b"k"] = b"v"
        self.assertEqual(self.db.get(b"k"), b"v")
        self.assertIsNone(self.db.get(b"absent"))
        self.assertEqual(self.db.get(b"absent", b"dflt"), b"dflt")
        self.assertEqual(self.db.get(key=b"absent", default=7), 7)
        with self.assertRaises(TypeError):
            self.db.get()
        with self.assertRaises(TypeError):
            self.db.get(b"k", None, None)
        with self.assertRaises(TypeError):
            self.db.get(b"k", nope=1)

    def test_delete(self):
        db = self.db
        db[b"k"] = b"v"
        del db[b"k"]
        self.assertNotIn(b"k", db)
        with self.assertRaises(KeyError) as cm:
            del db[b"k"]
        self.assertEqual(cm.exception.args, (b"k",))
        db.delete(b"k")  # absent: no error, as the C++ Delete
        db.put(b"j", b"v")
        db.delete(b"j")
        self.assertEqual(len(db), 0)

    def test_iteration(self):
        db = self.db
        expected = {b"k%04d" % i: b"v%d" % i for i in range(3000)}  # several batches
        db.update(expected)
        self.assertEqual(sorted(db), sorted(expected))
        self.assertEqual(sorted(db.keys()), sorted(expected))
        self.assertEqual(sorted(db.values()), sorted(expected.values()))
        self.assertEqual(dict(db.items()), expected)
        self.assertEqual(len(db.keys()), 3000)
        self.assertIn(b"k0001", db.keys())
        self.assertIn((b"k0001", b"v1"), db.items())
        self.assertNotIn((b"k0001", b"v2"), db.items())
        # Iterating over a copy, as with a dict, works too (iterating db itself while changing it:
        # test_changing_db_while_iterating).
        for k in list(db):
            db[k + b"-new"] = b"x"
        self.assertEqual(len(db), 6000)

    def test_iteration_is_lazy_and_holds_a_read_transaction(self):
        db = self.db
        db.update((b"k%d" % i, b"v") for i in range(100))
        it = iter(db)
        self.assertIsInstance(it, mapkv.Iterator)
        first = next(it)
        self.assertIn(first, db)  # reads go on meanwhile
        self.assertEqual(db.stats()["snapshots"], 1)
        # The iterator's read transaction is a snapshot: writes of this thread go through, and
        # the iterator goes on over the keys of its snapshot alone.
        db[b"new"] = b"x"
        db.delete(b"k1")
        self.assertEqual(db.pop(b"k2"), b"v")
        db.update({b"a": b"b"})
        db.setdefault(b"z", b"z")
        with db.transaction() as t:
            t[b"new2"] = b"x"
        rest = list(it)  # exhausted: its transaction ended
        self.assertEqual(sorted([first] + rest), sorted(b"k%d" % i for i in range(100)))
        self.assertEqual(db.stats()["snapshots"], 0)
        it = iter(db)
        next(it)
        del it  # dropped: its transaction ended
        self.assertEqual(db.stats()["snapshots"], 0)
        it = db.items().__iter__()
        next(it)
        it.close()
        self.assertEqual(db.stats()["snapshots"], 0)
        db.clear()
        self.assertEqual(len(db), 0)

    def test_changing_db_while_iterating(self):
        # Unlike a dict (RuntimeError), db may change while it is iterated: the iterator walks
        # its snapshot and yields each of its keys exactly once.
        db = self.db
        keys = [b"k%04d" % i for i in range(3000)]  # several batches
        db.update((k, b"v") for k in keys)
        seen = []
        for k in db:
            del db[k]
            seen.append(k)
        self.assertEqual(sorted(seen), keys)
        self.assertEqual(len(db), 0)
        # Adding many keys meanwhile (the index grows) and overwriting the ones still to come.
        db.update((k, b"old") for k in keys)
        capacity = db.stats()["index_capacity"]
        seen = []
        for i, (k, v) in enumerate(db.items()):
            seen.append((k, v))
            db.update((b"n%d-%d" % (i, j), b"x") for j in range(4))
            db.update((key, b"new") for key in keys[i::500])
        self.assertEqual(sorted(seen), [(k, b"old") for k in keys])
        self.assertGreater(db.stats()["index_capacity"], capacity)
        self.assertEqual(len(db), 3000 * 5)
        self.assertEqual(set(db.values()), {b"x", b"new"})

    def test_another_thread_iterates_while_this_one_writes(self):
        db = self.db
        db.update((b"k%d" % i, b"v") for i in range(2000))
        seen = []
        th = threading.Thread(target=lambda: seen.extend(db))
        th.start()
        db[b"late"] = b"x"  # goes through: the other thread's iteration is a snapshot
        th.join()
        self.assertIn(len(seen), (2000, 2001))  # as of before the write or after it

    def test_mutable_mapping(self):
        db = self.db
        self.assertIsInstance(db, collections.abc.MutableMapping)
        self.assertIsInstance(db, collections.abc.Mapping)
        self.assertEqual(db.setdefault(b"a", b"1"), b"1")
        self.assertEqual(db.setdefault(b"a", b"2"), b"1")
        self.assertEqual(db[b"a"], b"1")
        with self.assertRaises(TypeError):
            db.setdefault(b"b")  # no value to store: bytes only
        self.assertEqual(db.pop(b"a"), b"1")
        self.assertNotIn(b"a", db)
        self.assertIsNone(db.pop(b"a", None))
        self.assertEqual(db.pop(b"a", b"d"), b"d")
        with self.assertRaises(KeyError) as cm:
            db.pop(b"a")
        self.assertEqual(cm.exception.args, (b"a",))
        db.update({b"x": b"1"}, )
        db.update([(b"y", b"2"), (bytearray(b"z"), memoryview(b"3"))])
        self.assertEqual(dict(db.items()), {b"x": b"1", b"y": b"2", b"z": b"3"})
        with self.assertRaises(TypeError):
            db.update(k=b"v")  # keyword names are str, and keys are bytes
        with self.assertRaises(TypeError):
            db.update([(b"k", b"v", b"extra")])
        with self.assertRaises(TypeError):
            db.update({b"k": "str value"})
        self.assertEqual(len(db), 3)  # a refused update stored nothing
        k, v = db.popitem()
        self.assertEqual({b"x": b"1", b"y": b"2", b"z": b"3"}[k], v)
        self.assertEqual(len(db), 2)
        db.clear()
        self.assertEqual(len(db), 0)
        with self.assertRaises(KeyError):
            db.popitem()
        db.clear()  # empty: fine
        db[b"after"] = b"1"
        self.assertEqual(list(db), [b"after"])

    def test_large_value(self):
        big = os.urandom(3 << 20)
        self.db[b"big"] = big
        self.assertEqual(self.db[b"big"], big)

    def test_checkpoint_stats_verify(self):
        self.db[b"a"] = b"1"
        self.db.checkpoint()
        s = self.db.stats()
        self.assertEqual(s["keys"], 1)
        self.assertGreaterEqual(s["checkpoints"], 1)
        self.assertEqual(s["open_handles"], 1)
        self.assertFalse(s["is_cache"])
        self.assertEqual(s["format_version"], 5)
        self.assertEqual(s["snapshots"], 0)
        self.assertEqual(s["snapshot_pinned_bytes"], 0)
        self.assertEqual(s["compactions"], 0)
        self.assertEqual(s["bytes_relocated"], 0)
        self.assertEqual(s["write_amplification"], 1.0)
        self.assertEqual(s["writers_paced_kib_per_ms"], 0)
        self.assertGreaterEqual(s["disk_bytes"], s["log_bytes"])
        self.assertLessEqual(s["disk_bytes"], s["file_size"])
        self.assertIsNone(self.db.verify())

    def test_close_and_context_manager(self):
        with mapkv.open(self.path("other.mapkv")) as db:
            db[b"k"] = b"v"
            self.assertFalse(db.closed)
            self.assertIn("other.mapkv", repr(db))
        self.assertTrue(db.closed)
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            db[b"k"]
        self.assertIn("other.mapkv", str(cm.exception))
        self.assertIn("closed", str(cm.exception))
        with self.assertRaises(mapkv.FailedPreconditionError):
            db[b"k"] = b"v"
        db.close()  # twice is fine
        with mapkv.open(self.path("other.mapkv")) as db:
            self.assertEqual(db[b"k"], b"v")

    def test_path(self):
        self.assertEqual(self.db.path, self.path())
        import pathlib
        with mapkv.open(pathlib.Path(self.path("p.mapkv"))) as db:
            self.assertEqual(db.path, self.path("p.mapkv"))


class BytesLikeTest(TempDirTest):
    def test_bytes_like_keys_and_values(self):
        with mapkv.open(self.path()) as db:
            db[bytearray(b"ba")] = bytearray(b"v1")
            db[memoryview(b"mv")] = memoryview(b"xv2x")[1:3]
            db[array.array("B", b"ar")] = array.array("B", b"v3")
            self.assertEqual(db[b"ba"], b"v1")
            self.assertEqual(db[memoryview(b"mv")], b"v2")
            self.assertEqual(db[bytearray(b"ar")], b"v3")
            self.assertIn(bytearray(b"ba"), db)
            with db.transaction() as t:
                t[bytearray(b"t")] = memoryview(b"tv")
                self.assertEqual(t[memoryview(b"t")], b"tv")
            self.assertEqual(db.get(bytearray(b"t")), b"tv")

    def test_str_is_refused(self):
        with mapkv.open(self.path()) as db:
            for call in (lambda: db["k"], lambda: db.get("k"), lambda: "k" in db,
                         lambda: db.put("k", b"v"), lambda: db.put(b"k", "v"),
                         lambda: db.__setitem__(b"k", "v")):
                with self.assertRaises(TypeError) as cm:
                    call()
                self.assertIn("not str", str(cm.exception))
                self.assertIn("encode", str(cm.exception))
            self.assertEqual(len(db), 0)

    def test_other_types_are_refused(self):
        with mapkv.open(self.path()) as db:
            for bad in (1, None, 1.5, [b"a"]):
                with self.assertRaises(TypeError) as cm:
                    db[bad]
                self.assertIn(type(bad).__name__, str(cm.exception))
            with self.assertRaises(TypeError):  # not contiguous
                db[memoryview(b"abcdef")[::2]] = b"v"

    def test_key_sizes(self):
        with mapkv.open(self.path()) as db:
            with self.assertRaises(mapkv.InvalidArgumentError) as cm:
                db[b""] = b"v"
            self.assertIsInstance(cm.exception, ValueError)
            with self.assertRaises(ValueError) as cm:
                db[b"k" * (mapkv.MAX_KEY_SIZE + 1)] = b"v"
            self.assertIn(str(mapkv.MAX_KEY_SIZE + 1), str(cm.exception))
            db[b"k" * mapkv.MAX_KEY_SIZE] = b"v"
            self.assertEqual(db[b"k" * mapkv.MAX_KEY_SIZE], b"v")


class TransactionTest(TempDirTest):
    def test_commit_on_normal_exit(self):
        with mapkv.open(self.path()) as db, mapkv.open(self.path()) as other:
            db[b"gone"] = b"x"
            with db.transaction() as t:
                t[b"a"] = b"1"
                t.put(b"b", b"2")
                del t[b"gone"]
                self.assertEqual(t[b"a"], b"1")  # its own writes
                self.assertEqual(t.get(b"b"), b"2")
                self.assertIn(b"a", t)
                self.assertNotIn(b"gone", t)
                self.assertIsNone(t.get(b"gone"))
                with self.assertRaises(KeyError):
                    t[b"gone"]
                with self.assertRaises(KeyError):
                    del t[b"gone"]
                t.delete(b"gone")  # absent: fine
                # Another handle (as another process) sees none of it before the commit.
                self.assertNotIn(b"a", other)
                self.assertEqual(other[b"gone"], b"x")
            self.assertEqual(other[b"a"], b"1")
            self.assertEqual(other[b"b"], b"2")
            self.assertNotIn(b"gone", other)

    def test_abort_on_exception(self):
        with mapkv.open(self.path()) as db:
            db[b"keep"] = b"old"
            with self.assertRaises(RuntimeError):
                with db.transaction() as t:
                    t[b"new"] = b"1"
                    t[b"keep"] = b"changed"
                    raise RuntimeError("boom")
            self.assertNotIn(b"new", db)
            self.assertEqual(db[b"keep"], b"old")
            # The writer lock is free again.
            with db.transaction() as t:
                t[b"after"] = b"1"
            self.assertEqual(db[b"after"], b"1")

    def test_explicit_commit_and_abort(self):
        with mapkv.open(self.path()) as db:
            with db.transaction() as t:
                t[b"x"] = b"1"
                t.abort()
            self.assertNotIn(b"x", db)
            with db.transaction() as t:
                t[b"y"] = b"1"
                t.commit()
                with self.assertRaises(mapkv.FailedPreconditionError) as cm:
                    t[b"z"] = b"1"
                self.assertIn("finished", str(cm.exception))
            self.assertEqual(db[b"y"], b"1")
            self.assertNotIn(b"z", db)

    def test_unbegun_and_reused(self):
        with mapkv.open(self.path()) as db:
            t = db.transaction()
            with self.assertRaises(mapkv.FailedPreconditionError) as cm:
                t[b"k"] = b"v"
            self.assertIn("not begun", str(cm.exception))
            with t:
                t[b"k"] = b"v"
            with self.assertRaises(mapkv.FailedPreconditionError):
                with t:
                    pass
            self.assertEqual(db[b"k"], b"v")

    def test_other_thread_is_refused(self):
        with mapkv.open(self.path()) as db:
            errors = []
            with db.transaction() as t:
                def use():
                    try:
                        t[b"k"] = b"v"
                    except mapkv.FailedPreconditionError as e:
                        errors.append(e)
                th = threading.Thread(target=use)
                th.start()
                th.join()
            self.assertEqual(len(errors), 1)
            self.assertIn("thread", str(errors[0]))
            self.assertNotIn(b"k", db)

    def test_second_writer_times_out(self):
        with mapkv.open(self.path()) as db, \
                mapkv.open(self.path(), lock_timeout=0.2) as other:
            with db.transaction() as t:
                t[b"k"] = b"v"
                start = time.monotonic()
                with self.assertRaises(mapkv.DeadlineExceededError) as cm:
                    other[b"j"] = b"w"
                self.assertGreaterEqual(time.monotonic() - start, 0.15)
                self.assertIsInstance(cm.exception, TimeoutError)
                self.assertIn(self.path(), str(cm.exception))
            self.assertEqual(other[b"k"], b"v")
            self.assertNotIn(b"j", other)

    def test_waiting_writer_releases_the_gil(self):
        # A thread waits for the writer lock that this thread holds; this thread must still run
        # Python code (the GIL is free) to finish its transaction and let the other through. Were
        # the GIL held while waiting, this thread would stand still until the other's put timed
        # out (10 s), and `result` would stay empty: that shows it, on a machine of any speed.
        with mapkv.open(self.path()) as db, mapkv.open(self.path(), lock_timeout=10) as other:
            result = []
            with db.transaction() as t:
                th = threading.Thread(target=lambda: result.append(other.put(b"w", b"2")))
                th.start()
                end = time.monotonic() + 0.2  # time for the other thread to start waiting
                while time.monotonic() < end:
                    pass
                t[b"t"] = b"1"
            th.join(10)
            self.assertFalse(th.is_alive())
            self.assertEqual(result, [None])
            self.assertEqual(db[b"w"], b"2")
            self.assertEqual(db[b"t"], b"1")

    def test_transaction_of_a_closed_database(self):
        db = mapkv.open(self.path())
        t = db.transaction()
        db.close()
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            with t:
                pass
        self.assertIn("closed", str(cm.exception))

    def test_close_with_open_transaction(self):
        db = mapkv.open(self.path())
        t = db.transaction()
        with t:
            t[b"k"] = b"v"
            db.close()  # the transaction keeps the file open until it ends
            self.assertTrue(db.closed)
        with mapkv.open(self.path()) as again:
            self.assertEqual(again[b"k"], b"v")


class OptionsTest(TempDirTest):
    def test_unknown_keyword(self):
        with self.assertRaises(TypeError) as cm:
            mapkv.open(self.path(), create_if_mising=True)
        self.assertIn("create_if_mising", str(cm.exception))
        self.assertFalse(os.path.exists(self.path()))
        with self.assertRaises(TypeError) as cm:
            mapkv.open_cache(self.path(), capacty=1)
        self.assertIn("capacty", str(cm.exception))

    def test_wrong_types_and_values(self):
        bad = [
            (TypeError, dict(create_if_missing="yes")),
            (TypeError, dict(max_file_size=1.5)),
            (TypeError, dict(max_file_size=True)),
            (ValueError, dict(max_file_size=-1)),
            (ValueError, dict(durability="fast")),
            (ValueError, dict(durability=1)),
            (TypeError, dict(lock_timeout="1")),
            (ValueError, dict(lock_timeout=-1)),
            (ValueError, dict(lock_timeout=float("nan"))),
            (ValueError, dict(file_mode=0o17777)),
            (TypeError, dict(info_log=3)),
        ]
        for exc, kw in bad:
            with self.subTest(kw=kw):
                with self.assertRaises(exc) as cm:
                    mapkv.open(self.path(), **kw)
                self.assertIn(next(iter(kw)), str(cm.exception))

    def test_options_reach_the_engine(self):
        old = os.umask(0)
        try:
            with mapkv.open(self.path(), file_mode=0o640, durability="sync",
                            initial_file_size=4 << 20, max_file_size=32 << 20,
                            initial_index_slots=4096, verify_checksums=False,
                            lock_timeout=2.5, checkpoint_interval=0.5,
                            checkpoint_bytes=1 << 20, huge_pages=False,
                            info_log=lambda line: None) as db:
                db[b"k"] = b"v"
                s = db.stats()
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path()).st_mode), 0o640)
        self.assertEqual(s["file_size"], 4 << 20)
        self.assertEqual(s["max_file_size"], 32 << 20)
        self.assertEqual(s["index_capacity"], 4096)
        for durability in ("none", "periodic"):
            with mapkv.open(self.path(), durability=durability) as db:
                self.assertEqual(db[b"k"], b"v")

    def test_create_if_missing_false(self):
        with self.assertRaises(FileNotFoundError) as cm:
            mapkv.open(self.path("missing.mapkv"), create_if_missing=False)
        self.assertIn(self.path("missing.mapkv"), str(cm.exception))
        self.assertIsInstance(cm.exception, mapkv.FileNotFoundError)
        self.assertNotIsInstance(cm.exception, KeyError)
        self.assertFalse(os.path.exists(self.path("missing.mapkv")))

    def test_error_if_exists(self):
        mapkv.open(self.path()).close()
        with self.assertRaises(mapkv.AlreadyExistsError) as cm:
            mapkv.open(self.path(), error_if_exists=True)
        self.assertIsInstance(cm.exception, FileExistsError)
        self.assertIn(self.path(), str(cm.exception))

    def test_read_only(self):
        with mapkv.open(self.path()) as db:
            db[b"k"] = b"v"
        with mapkv.open(self.path(), read_only=True) as ro:
            self.assertEqual(ro[b"k"], b"v")
            for write in (lambda: ro.put(b"k", b"w"), lambda: ro.__delitem__(b"k"),
                          lambda: ro.transaction().__enter__()):
                with self.assertRaises(mapkv.PermissionDeniedError) as cm:
                    write()
                self.assertIsInstance(cm.exception, PermissionError)
                self.assertIn(self.path(), str(cm.exception))
            self.assertEqual(ro[b"k"], b"v")

    def test_exclusive(self):
        with mapkv.open(self.path()):
            with self.assertRaises(mapkv.FailedPreconditionError) as cm:
                mapkv.open(self.path(), exclusive=True)
            self.assertIn(self.path(), str(cm.exception))
        with mapkv.open(self.path(), exclusive=True):
            with self.assertRaises(mapkv.DeadlineExceededError):
                mapkv.open(self.path(), lock_timeout=0.1)

    def test_max_file_size(self):
        with mapkv.open(self.path(), max_file_size=2 << 20) as db:
            with self.assertRaises(mapkv.ResourceExhaustedError) as cm:
                for i in range(100):
                    db[b"%d" % i] = b"x" * 100_000
            self.assertIn(self.path(), str(cm.exception))
            self.assertIn("max_file_size", str(cm.exception))
            n = len(db)
            self.assertGreater(n, 0)
            self.assertEqual(db[b"0"], b"x" * 100_000)  # nothing committed was lost


class ErrorsTest(TempDirTest):
    def test_hierarchy(self):
        pairs = [
            (mapkv.NotFoundError, KeyError),
            (mapkv.InvalidArgumentError, ValueError),
            (mapkv.DeadlineExceededError, TimeoutError),
            (mapkv.PermissionDeniedError, PermissionError),
            (mapkv.AlreadyExistsError, FileExistsError),
            (mapkv.OutOfRangeError, OverflowError),
        ]
        for cls, builtin in pairs:
            self.assertTrue(issubclass(cls, mapkv.Error))
            self.assertTrue(issubclass(cls, builtin))
        for cls in (mapkv.ResourceExhaustedError, mapkv.FailedPreconditionError,
                    mapkv.DataLossError):
            self.assertTrue(issubclass(cls, mapkv.Error))
        self.assertEqual(mapkv.DataLossError.code, "DATA_LOSS")

    def test_types_are_made_by_the_functions(self):
        for cls in (mapkv.DB, mapkv.Cache, mapkv.Transaction, mapkv.ReadTransaction,
                    mapkv.Iterator):
            with self.assertRaises(TypeError):
                cls()

    def test_pickled_by_name(self):
        # multiprocessing sends a worker's exception back to its parent.
        e = pickle.loads(pickle.dumps(mapkv.NotFoundError(b"k")))
        self.assertIs(type(e), mapkv.NotFoundError)
        self.assertEqual(e.args, (b"k",))
        e = pickle.loads(pickle.dumps(mapkv.DeadlineExceededError("f: late")))
        self.assertIs(type(e), mapkv.DeadlineExceededError)
        self.assertEqual(str(e), "f: late")

    def test_not_a_mapkv_file(self):
        with open(self.path("junk"), "wb") as f:
            f.write(b"hello world\n" * 1000)
        with self.assertRaises(mapkv.InvalidArgumentError) as cm:
            mapkv.open(self.path("junk"))
        self.assertIn(self.path("junk"), str(cm.exception))
        self.assertIn("not a mapkv", str(cm.exception))

    def test_cache_and_database_refuse_each_other(self):
        mapkv.open_cache(self.path("cache.mapkv")).close()
        mapkv.open(self.path("db.mapkv")).close()
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            mapkv.open(self.path("cache.mapkv"))
        self.assertIn(self.path("cache.mapkv"), str(cm.exception))
        self.assertIn("cache", str(cm.exception))
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            mapkv.open_cache(self.path("db.mapkv"))
        self.assertIn(self.path("db.mapkv"), str(cm.exception))

    def test_damaged_record(self):
        with mapkv.open(self.path()) as db:
            db[b"victim"] = b"V" * 64
            db[b"other"] = b"o" * 10
        with open(self.path(), "r+b") as f:
            data = f.read()
            at = data.index(b"V" * 64) + 10
            f.seek(at)
            f.write(b"W")
        with mapkv.open(self.path()) as db:
            self.assertEqual(db[b"other"], b"o" * 10)
            with self.assertRaises(mapkv.DataLossError) as cm:
                db[b"victim"]
            self.assertIn("victim", str(cm.exception))
            self.assertIn("offset", str(cm.exception))
            with self.assertRaises(mapkv.DataLossError):
                db.get(b"victim")
            with self.assertRaises(mapkv.DataLossError):
                b"victim" in db
            with self.assertRaises(mapkv.DataLossError) as cm:
                db.verify()
            self.assertTrue(cm.exception.problems)
            self.assertEqual(set(cm.exception.problems[0]), {"offset", "kind", "detail"})
            with self.assertRaises(mapkv.DataLossError):
                list(db.items())
            with self.assertRaises(mapkv.DataLossError):
                with db.begin() as txn:
                    list(txn.values())

    def test_handle_used_after_fork(self):
        if not hasattr(os, "fork"):
            self.skipTest("no fork()")
        with mapkv.open(self.path()) as db:
            db[b"k"] = b"v"
            pid = os.fork()
            if pid == 0:  # the child: the inherited handle refuses every call
                code = 1
                try:
                    db[b"k"]
                except mapkv.FailedPreconditionError as e:
                    code = 7 if "fork" in str(e) else 2
                except BaseException:
                    code = 3
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 7)
            self.assertEqual(db[b"k"], b"v")  # the parent's handle still works

    def test_iterator_across_fork(self):
        # The child inherits an iterator whose scanning thread stayed in the parent: using it or
        # dropping it there neither hangs nor touches the parent's transaction.
        if not hasattr(os, "fork"):
            self.skipTest("no fork()")
        with mapkv.open(self.path()) as db:
            db.update((b"k%d" % i, b"v") for i in range(3000))
            it = iter(db)
            next(it)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    it.close()
                    del it
                    code = 7
                except BaseException:
                    code = 3
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 7)
            self.assertEqual(len(list(it)), 2999)
            db[b"after"] = b"x"


class CacheTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.cache = mapkv.open_cache(self.path("cache.mapkv"), capacity=8 << 20,
                                      compute_timeout=5)

    def tearDown(self):
        self.cache.close()
        super().tearDown()

    def test_get_put_delete(self):
        c = self.cache
        self.assertIsNone(c.get(b"k"))
        self.assertEqual(c.get(b"k", b"d"), b"d")
        with self.assertRaises(KeyError):
            c[b"k"]
        c.put(b"k", b"v")
        c[bytearray(b"k2")] = memoryview(b"v2")
        self.assertEqual(c[b"k"], b"v")
        self.assertEqual(c.get(b"k2"), b"v2")
        self.assertIn(b"k", c)
        c.delete(b"k")
        c.delete(b"k")  # absent: fine
        self.assertNotIn(b"k", c)
        with self.assertRaises(TypeError):
            c.put("k", b"v")

    def test_ttl(self):
        c = self.cache
        c.put(b"long", b"v", ttl=60)
        c.put(b"forever", b"v")
        put_at = time.monotonic()
        c.put(b"short", b"v", ttl=0.3)
        got = c.get(b"short")
        if time.monotonic() - put_at < 0.25:  # a busy machine may have let it expire already
            self.assertEqual(got, b"v")
        time.sleep(0.35)
        self.assertIsNone(c.get(b"short"))
        self.assertEqual(c.get(b"long"), b"v")
        self.assertEqual(c.get(b"forever"), b"v")
        self.assertGreaterEqual(c.stats()["expirations"], 1)
        for bad in (-1, datetime.timedelta(seconds=-1), float("inf"), float("nan")):
            with self.assertRaises(ValueError):
                c.put(b"k", b"v", ttl=bad)
        with self.assertRaises(TypeError):
            c.put(b"k", b"v", ttl="1")

    def test_ttl_zero_never_expires_and_timedelta(self):
        # As in C++ (Ttl{0}): 0 means never, as None does.
        c = self.cache
        c.put(b"zero", b"v", ttl=0)
        c.put(b"zero_td", b"v", ttl=datetime.timedelta(0))
        c.put(b"td", b"v", ttl=datetime.timedelta(milliseconds=300))
        self.assertEqual(c.increment(b"n", 1, ttl=0), 1)
        self.assertEqual(c.get_or_compute(b"gc", lambda: b"g", ttl=datetime.timedelta(0)), b"g")
        time.sleep(0.35)
        self.assertIsNone(c.get(b"td"))
        for k in (b"zero", b"zero_td", b"gc"):
            self.assertIsNotNone(c.get(k), k)
        self.assertEqual(c.get(b"n"), b"1")

    def test_get_or_compute(self):
        c = self.cache
        calls = []

        def fn():
            calls.append(1)
            return b"computed"

        self.assertEqual(c.get_or_compute(b"k", fn), b"computed")
        self.assertEqual(c.get_or_compute(b"k", fn), b"computed")
        self.assertEqual(len(calls), 1)
        self.assertEqual(c.get(b"k"), b"computed")
        self.assertEqual(c.get_or_compute(b"t", lambda: bytearray(b"ba"), ttl=30), b"ba")
        s = c.stats()
        self.assertEqual(s["computes"], 2)
        self.assertGreaterEqual(s["hits"], 2)
        self.assertTrue(s["db"]["is_cache"])
        self.assertEqual(s["db"]["cache_capacity"], 8 << 20)

    def test_capacity_evicts_the_oldest(self):
        c = self.cache
        for i in range(3000):  # 12 MiB through the 8 MiB file
            c.put(b"fill/%d" % i, b"v" * 4096)
        s = c.stats()
        self.assertGreater(s["evictions"], 0)
        self.assertEqual(s["db"]["evictions"], s["evictions"])
        self.assertLessEqual(os.path.getsize(self.path("cache.mapkv")), 8 << 20)
        self.assertEqual(c.get(b"fill/2999"), b"v" * 4096)
        self.assertIsNone(c.get(b"fill/0"))

    def test_compute_exception_propagates_and_stores_nothing(self):
        c = self.cache

        class Boom(Exception):
            pass

        def fail():
            raise Boom("no value")

        with self.assertRaises(Boom):
            c.get_or_compute(b"k", fail)
        self.assertIsNone(c.get(b"k"))
        with self.assertRaises(TypeError):
            c.get_or_compute(b"k", lambda: "a str")
        self.assertIsNone(c.get(b"k"))
        with self.assertRaises(TypeError):
            c.get_or_compute(b"k", b"not callable")
        self.assertEqual(c.get_or_compute(b"k", lambda: b"ok"), b"ok")  # the lease was dropped

    def test_waiting_for_a_computation_releases_the_gil(self):
        # Two threads of one process ask for one key: the second waits (polling, without the
        # GIL) while the first one's fn, which needs the GIL, finishes. The fn returns once the
        # statistics count the wait (or after 4 s, under the cache's compute_timeout of 5 s), so
        # that the second call waits however the threads are scheduled.
        c = self.cache
        calls, results = [], []
        started = threading.Event()

        def slow():
            calls.append(threading.get_ident())
            started.set()
            give_up = time.monotonic() + 4
            while c.stats()["waits"] < 1 and time.monotonic() < give_up:
                time.sleep(0.01)
            return b"slow"

        th = threading.Thread(target=lambda: results.append(c.get_or_compute(b"k", slow)))
        th.start()
        started.wait(5)
        results.append(c.get_or_compute(b"k", slow))
        th.join(10)
        self.assertEqual(results, [b"slow", b"slow"])
        self.assertEqual(len(calls), 1)
        self.assertGreaterEqual(c.stats()["waits"], 1)

    def test_increment(self):
        c = self.cache
        self.assertEqual(c.increment(b"n"), 1)
        self.assertEqual(c.increment(b"n", 10), 11)
        self.assertEqual(c.increment(b"n", delta=-20), -9)
        self.assertEqual(c.get(b"n"), b"-9")
        self.assertEqual(c.increment(b"ttl", ttl=30), 1)
        c.put(b"text", b"abc")
        with self.assertRaises(mapkv.InvalidArgumentError) as cm:
            c.increment(b"text")
        self.assertIn("text", str(cm.exception))
        c.put(b"max", b"%d" % (2**63 - 1))
        with self.assertRaises(mapkv.OutOfRangeError) as cm:
            c.increment(b"max")
        self.assertIsInstance(cm.exception, OverflowError)
        self.assertEqual(c.get(b"max"), b"%d" % (2**63 - 1))
        with self.assertRaises(TypeError):
            c.increment(b"n", 1.5)

    def test_checkpoint_close_context(self):
        self.cache.put(b"k", b"v")
        self.cache.checkpoint()
        with mapkv.open_cache(self.path("cache.mapkv")) as c2:
            self.assertEqual(c2.get(b"k"), b"v")
            self.assertEqual(c2.stats()["db"]["open_handles"], 2)
        self.assertTrue(c2.closed)
        with self.assertRaises(mapkv.FailedPreconditionError):
            c2.get(b"k")


# ---- A pool of worker processes sharing one cache ----
# Module-level functions, so that a 'spawn' pool's workers can import them.

_worker_cache = None
_marker_dir = None
_barrier = None


def _pool_init(path, marker_dir, barrier):
    global _worker_cache, _marker_dir, _barrier
    _worker_cache = mapkv.open_cache(path, compute_timeout=20)
    _marker_dir = marker_dir
    _barrier = barrier


def _pool_compute(key):
    # The 4 workers, one task each (a worker waiting here takes no other), ask for a key at once.
    _barrier.wait(20)
    def fn():
        # One marker file per run of fn, named after the key: they are counted afterwards.
        name = "%s.%d.%s" % (key.decode(), os.getpid(), uuid.uuid4().hex)
        with open(os.path.join(_marker_dir, name), "w"):
            pass
        _worker_cache.increment(b"runs:" + key)
        time.sleep(0.02)  # long enough for the other workers to arrive and wait
        return b"value of " + key

    return _worker_cache.get_or_compute(key, fn)


def _pool_increment(n):
    _barrier.wait(20)
    for _ in range(n):
        _worker_cache.increment(b"total")
    return os.getpid()


class ReadTransactionTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.db = mapkv.open(self.path(), lock_timeout=5)
        self.db.update({b"a": b"1", b"b": b"22", b"c": b"333"})

    def tearDown(self):
        self.db.close()
        super().tearDown()

    def test_context_manager_and_reads(self):
        with self.db.begin() as txn:
            self.assertIsInstance(txn, mapkv.ReadTransaction)
            self.assertTrue(txn.active)
            self.assertFalse(txn.buffers)
            self.assertEqual(txn[b"a"], b"1")
            self.assertEqual(txn.get(b"b"), b"22")
            self.assertIsNone(txn.get(b"zz"))
            self.assertEqual(txn.get(b"zz", b"d"), b"d")
            with self.assertRaises(KeyError) as cm:
                txn[b"zz"]
            self.assertEqual(cm.exception.args, (b"zz",))
            self.assertIn(b"c", txn)
            self.assertNotIn(b"zz", txn)
            self.assertEqual(len(txn), 3)
            self.assertEqual(sorted(txn), [b"a", b"b", b"c"])
            self.assertEqual(sorted(txn.keys()), [b"a", b"b", b"c"])
            self.assertEqual(sorted(txn.values()), [b"1", b"22", b"333"])
            self.assertEqual(dict(txn.items()), {b"a": b"1", b"b": b"22", b"c": b"333"})
            self.assertIsInstance(txn.keys(), mapkv.Iterator)
        self.assertFalse(txn.active)
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            txn[b"a"]
        self.assertIn("finished", str(cm.exception))
        txn.abort()  # twice is fine
        self.db[b"d"] = b"4"  # the lock is free again

    def test_one_consistent_view(self):
        # Another handle's commit goes through while the read transaction lives, and the
        # transaction sees none of it: a snapshot.
        with mapkv.open(self.path(), lock_timeout=5) as other:
            txn = self.db.begin()
            th = threading.Thread(target=lambda: other.update({b"a": b"new", b"n": b"new"}))
            th.start()
            th.join(5)
            self.assertFalse(th.is_alive())  # committed without waiting for the transaction
            other.delete(b"b")
            self.assertEqual(self.db[b"a"], b"new")
            self.assertEqual(txn[b"a"], b"1")
            self.assertEqual(txn[b"b"], b"22")
            self.assertNotIn(b"n", txn)
            self.assertEqual(len(txn), 3)
            self.assertEqual(dict(txn.items()), {b"a": b"1", b"b": b"22", b"c": b"333"})
            txn.commit()  # ends it, as abort()
            with self.db.begin() as now:
                self.assertEqual(dict(now.items()), {b"a": b"new", b"c": b"333", b"n": b"new"})

    def test_writes_from_this_thread_go_through_while_it_lives(self):
        with self.db.begin() as txn:
            self.db[b"x"] = b"1"
            self.db[b"a"] = b"changed"
            with self.db.transaction() as t:
                del t[b"c"]
            self.assertEqual(self.db[b"x"], b"1")
            self.assertNotIn(b"c", self.db)
            self.assertNotIn(b"x", txn)  # the transaction sees its snapshot
            self.assertEqual(txn[b"a"], b"1")
            self.assertEqual(txn[b"c"], b"333")
            self.assertEqual(sorted(txn), [b"a", b"b", b"c"])
        txn = self.db.begin(buffers=True)
        v = txn[b"a"]
        self.db[b"a"] = b"changed again"  # a new record: the snapshot's stays where v points
        self.db.update((b"g%d" % i, b"x" * 1000) for i in range(3000))  # the file grows
        self.assertEqual(bytes(v), b"changed")
        self.assertEqual(bytes(txn[b"a"]), b"changed")
        del txn  # dropped without an end: ends as abort() would
        self.db[b"y"] = b"1"
        with self.assertRaises(ValueError):
            bytes(v)

    def test_buffers_are_memoryviews_released_at_the_end(self):
        with self.db.begin(buffers=True) as txn:
            self.assertTrue(txn.buffers)
            v = txn[b"b"]
            self.assertIsInstance(v, memoryview)
            self.assertTrue(v.readonly)
            self.assertEqual(bytes(v), b"22")
            self.assertEqual(v.tobytes(), b"22")
            with self.assertRaises(TypeError):
                v[0] = 1
            self.assertIsInstance(txn.get(b"a"), memoryview)
            items = list(txn.items())
            self.assertTrue(all(type(k) is bytes and type(v) is memoryview for k, v in items))
            self.assertEqual({k: bytes(v) for k, v in items},
                             {b"a": b"1", b"b": b"22", b"c": b"333"})
            for _ in range(1000):  # many views dropped at once: none is kept for long
                txn.get(b"a")
        with self.assertRaises(ValueError):  # released: no read of what the file holds now
            bytes(v)
        with self.assertRaises(ValueError):
            items[0][1].tobytes()

    def test_iterator_of_a_finished_transaction(self):
        txn = self.db.begin()
        it = iter(txn)
        next(it)
        txn.abort()
        with self.assertRaises(mapkv.FailedPreconditionError):
            list(it)

    def test_commits_keep_the_log_bounded(self):
        # The cleaner (format 5): the live records move to the log's end in the writer's own
        # batches, and the log stays within the ratio; no compaction copies the file.
        path = self.path("cleaned.mapkv")
        value = b"v" * 100
        with mapkv.open(path, compact_ratio=2.0) as db:
            for _ in range(30):
                for k in range(1000):
                    db[b"k%d" % k] = value
            st = db.stats()
            self.assertEqual(st["format_version"], 5)
            self.assertEqual(st["compactions"], 0)
            self.assertLess(st["log_bytes"], 1700 * 1000)
            self.assertGreater(st["bytes_relocated"], 0)
            self.assertGreater(st["write_amplification"], 1.0)
        with self.assertRaises(ValueError):
            mapkv.open(self.path("v3.mapkv"), create_format_version=3)

    def test_commits_start_online_compactions(self):
        # Format 4 (which older builds open too): online compactions copy the file instead.
        path = self.path("auto.mapkv")
        value = b"v" * 100
        with mapkv.open(path, compact_ratio=2.0, compact_min_garbage=1 << 20,
                        create_format_version=4) as db:
            for _ in range(30):
                for k in range(1000):
                    db[b"k%d" % k] = value
        # Closing waits for the handle's compaction; one more commit starts another if the log
        # is still past the ratio. Then it holds at most the live records, the index and 1 MiB
        # (compact_min_garbage), not the 4.5 MB of 30 rounds.
        with mapkv.open(path, compact_ratio=2.0, compact_min_garbage=1 << 20) as db:
            db[b"k0"] = value
        with mapkv.open(path, compact_ratio=0) as db:
            st = db.stats()
            self.assertEqual(st["keys"], 1000)
            self.assertLess(st["log_bytes"], 1700 * 1000)
            # Its history: the compactions, and what they copied of the bytes written.
            self.assertGreaterEqual(st["compactions"], 1)
            self.assertGreater(st["bytes_written"], 30 * 1000 * 100)
            self.assertGreater(st["bytes_relocated"], 0)
            self.assertGreater(st["write_amplification"], 1.0)
            self.assertEqual(db[b"k999"], value)
        with self.assertRaises(ValueError):
            mapkv.open(path, compact_ratio=-1)
        with self.assertRaises(TypeError):
            mapkv.open(path, compact_ratio="2")

    def test_snapshot_past_max_snapshot_bytes_is_too_old(self):
        with mapkv.open(self.path("cap.mapkv"), max_snapshot_bytes=1024) as db:
            db[b"k"] = b"v"
            txn = db.begin()
            db[b"k"] = b"x" * 2048
            with self.assertRaises(mapkv.FailedPreconditionError) as cm:
                txn[b"k"]
            self.assertIn("snapshot too old", str(cm.exception))
            txn.abort()
            with db.begin() as fresh:
                self.assertEqual(fresh[b"k"], b"x" * 2048)

    def test_snapshots_lists_open_transactions(self):
        self.assertEqual(self.db.snapshots(), [])
        before = int(time.time() * 1000)
        txn = self.db.begin()
        after = int(time.time() * 1000)
        infos = self.db.snapshots()
        self.assertEqual(len(infos), 1)
        info = infos[0]
        self.assertEqual(set(info), {"pid", "snapshots", "since_unix_ms", "tail", "pinned_bytes"})
        self.assertEqual(info["pid"], os.getpid())
        self.assertEqual(info["snapshots"], 1)
        self.assertIsInstance(info["since_unix_ms"], int)
        self.assertGreaterEqual(info["since_unix_ms"], before - 1000)
        self.assertLessEqual(info["since_unix_ms"], after + 1000)
        self.assertGreater(info["tail"], 0)
        self.assertEqual(info["pinned_bytes"], 0)
        s = self.db.stats()
        self.assertEqual(s["snapshots"], 1)
        self.assertEqual(s["snapshot_pinned_bytes"], 0)
        self.db[b"later"] = b"x" * 1000  # kept readable for the snapshot: pinned
        with mapkv.open(self.path()) as other:  # another handle sees this one's snapshot
            (info,) = other.snapshots()
            self.assertEqual(info["pid"], os.getpid())
            self.assertGreater(info["pinned_bytes"], 1000)
            self.assertEqual(other.stats()["snapshot_pinned_bytes"], info["pinned_bytes"])
        it = iter(self.db)  # an iterator's own transaction is one more
        next(it)
        (info,) = self.db.snapshots()
        self.assertEqual(info["snapshots"], 2)
        self.assertEqual(self.db.stats()["snapshots"], 2)
        it.close()
        txn.abort()
        self.assertEqual(self.db.snapshots(), [])
        s = self.db.stats()
        self.assertEqual(s["snapshots"], 0)
        self.assertEqual(s["snapshot_pinned_bytes"], 0)
        self.db.close()
        with self.assertRaises(mapkv.FailedPreconditionError):
            self.db.snapshots()

    def test_begin_write(self):
        with self.db.begin(write=True) as t:
            self.assertIsInstance(t, mapkv.Transaction)
            t[b"w"] = b"1"
        self.assertEqual(self.db[b"w"], b"1")
        t = self.db.begin(write=True)
        t[b"w2"] = b"2"
        t.commit()
        self.assertEqual(self.db[b"w2"], b"2")
        with self.assertRaises(ValueError):
            self.db.begin(write=True, buffers=True)

    def test_closed_database(self):
        db = mapkv.open(self.path("other.mapkv"))
        db[b"k"] = b"v"
        txn = db.begin()
        db.close()  # the transaction keeps the file open until it ends
        self.assertEqual(txn[b"k"], b"v")
        txn.abort()
        with self.assertRaises(mapkv.FailedPreconditionError):
            db.begin()
        with self.assertRaises(mapkv.FailedPreconditionError):
            iter(db)


class FormatVersion1Test(TempDirTest):
    """A file of format version 1 (the golden one): a read transaction holds the shared lock."""

    def setUp(self):
        super().setUp()
        shutil.copyfile(GOLDEN_V1, self.path())
        self.db = mapkv.open(self.path(), lock_timeout=5)
        self.assertEqual(self.db.stats()["format_version"], 1)
        self.keys = len(self.db)
        self.assertGreater(self.keys, 100)

    def tearDown(self):
        self.db.close()
        super().tearDown()

    def test_commits_wait_for_a_read_transaction(self):
        # Another handle's commit waits for the read transaction, which sees none of it.
        with mapkv.open(self.path(), lock_timeout=5) as other:
            txn = self.db.begin()
            self.assertEqual(self.db.snapshots(), [])  # not a snapshot
            self.assertEqual(self.db.stats()["snapshots"], 0)
            th = threading.Thread(target=lambda: other.update({b"batch/a": b"new", b"n": b"new"}))
            th.start()
            time.sleep(0.1)
            self.assertEqual(txn[b"batch/a"], b"1")
            self.assertNotIn(b"n", txn)
            self.assertEqual(len(txn), self.keys)
            self.assertTrue(th.is_alive())  # waiting for this transaction
            txn.commit()  # ends it, as abort()
            th.join(5)
            self.assertFalse(th.is_alive())
            self.assertEqual(self.db[b"batch/a"], b"new")

    def test_writes_from_this_thread_are_refused_while_it_lives(self):
        with self.db.begin() as txn:
            with self.assertRaises(mapkv.FailedPreconditionError) as cm:
                self.db[b"x"] = b"1"
            self.assertIn("read transaction", str(cm.exception))
            self.assertEqual(txn[b"batch/a"], b"1")
        self.db[b"x"] = b"1"
        txn = self.db.begin()
        del txn  # dropped without an end: ends as abort() would
        self.db[b"y"] = b"1"

    def test_writes_from_the_iterating_thread_are_refused(self):
        db = self.db
        it = iter(db)
        first = next(it)
        self.assertIn(first, db)  # reads go on meanwhile
        # A commit from this thread would wait for the iterator's read transaction: refused.
        with self.assertRaises(mapkv.FailedPreconditionError) as cm:
            db[b"new"] = b"x"
        self.assertIn("read transaction", str(cm.exception))
        for write in (lambda: db.delete(first), lambda: db.pop(first), db.clear,
                      lambda: db.update({b"a": b"b"}), lambda: db.setdefault(b"z", b"z")):
            with self.assertRaises(mapkv.FailedPreconditionError):
                write()
        with self.assertRaises(mapkv.FailedPreconditionError):
            with db.transaction() as t:
                t[b"new"] = b"x"
        self.assertNotIn(b"new", db)  # the refused commit aborted it
        self.assertEqual(len(list(it)), self.keys - 1)  # exhausted: its transaction ended
        db[b"new"] = b"x"
        it = iter(db)
        next(it)
        del it  # dropped: its transaction ended
        db[b"new2"] = b"x"
        it = db.items().__iter__()
        next(it)
        it.close()
        db[b"new3"] = b"x"
        self.assertEqual(len(db), self.keys + 3)
        for k in list(db):  # to change what you iterate there, iterate over a copy
            del db[k]
        self.assertEqual(len(db), 0)

    def test_another_thread_iterates_while_this_one_writes(self):
        db = self.db
        seen = []
        th = threading.Thread(target=lambda: seen.extend(db))
        th.start()
        db[b"late"] = b"x"  # waits (at most) for the other thread's iteration
        th.join()
        self.assertIn(len(seen), (self.keys, self.keys + 1))


class OpenErrorsTest(TempDirTest):
    def check_os_error(self, cm, cls, builtin, err, path):
        e = cm.exception
        self.assertIsInstance(e, cls)
        self.assertIsInstance(e, builtin)
        self.assertIsInstance(e, OSError)
        self.assertIsInstance(e, mapkv.Error)
        self.assertNotIsInstance(e, KeyError)
        self.assertEqual(e.errno, err)
        self.assertEqual(e.filename, path)
        self.assertIn(path, str(e))

    def test_missing_file(self):
        import errno
        path = self.path("missing.mapkv")
        for open_ in (mapkv.open, mapkv.open_cache):
            with self.assertRaises(builtins.FileNotFoundError) as cm:
                open_(path, create_if_missing=False)
            self.check_os_error(cm, mapkv.FileNotFoundError, builtins.FileNotFoundError,
                                errno.ENOENT, path)
            with self.assertRaises(FileNotFoundError):
                open_(path, read_only=True)
        path = self.path("no/such/dir.mapkv")
        with self.assertRaises(FileNotFoundError) as cm:
            mapkv.open(path)
        self.check_os_error(cm, mapkv.FileNotFoundError, builtins.FileNotFoundError,
                            errno.ENOENT, path)

    def test_directory(self):
        import errno
        for open_ in (mapkv.open, mapkv.open_cache):
            for kwargs in ({}, {"create_if_missing": False}, {"read_only": True}):
                with self.assertRaises(IsADirectoryError) as cm:
                    open_(self.dir, **kwargs)
                self.check_os_error(cm, mapkv.IsADirectoryError, builtins.IsADirectoryError,
                                    errno.EISDIR, self.dir)

    def test_pickled(self):
        e = pickle.loads(pickle.dumps(mapkv.FileNotFoundError(2, "gone", "/x")))
        self.assertIs(type(e), mapkv.FileNotFoundError)
        self.assertEqual((e.errno, e.filename), (2, "/x"))


class OptionIgnoredTest(TempDirTest):
    def test_cache_capacity_of_an_existing_cache_warns(self):
        with mapkv.open_cache(self.path(), capacity=4 << 20):
            pass
        with self.assertWarns(mapkv.OptionIgnoredWarning) as cm:
            c = mapkv.open_cache(self.path(), capacity=8 << 20)
        self.assertIn("capacity", str(cm.warning))
        self.assertIn(str(4 << 20), str(cm.warning))
        self.assertEqual(c.stats()["db"]["cache_capacity"], 4 << 20)
        c.close()
        self.assertTrue(issubclass(mapkv.OptionIgnoredWarning, UserWarning))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same capacity, or none given: no warning
            mapkv.open_cache(self.path(), capacity=4 << 20).close()
            mapkv.open_cache(self.path()).close()
            warnings.simplefilter("error", mapkv.OptionIgnoredWarning)
            with self.assertRaises(mapkv.OptionIgnoredWarning):
                mapkv.open_cache(self.path(), capacity=1 << 20)

    def test_max_file_size_the_file_does_not_take_warns(self):
        # The first handle to open the file sets its limit; later ones, while it is open, keep it.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            first = mapkv.open(self.path(), max_file_size=64 << 20)
            mapkv.open(self.path(), max_file_size=64 << 20).close()
        with self.assertWarns(mapkv.OptionIgnoredWarning) as cm:
            db = mapkv.open(self.path(), max_file_size=1 << 30)
        self.assertIn("max_file_size", str(cm.warning))
        self.assertEqual(cm.filename, __file__)  # points at the caller's line
        self.assertEqual(db.stats()["max_file_size"], 64 << 20)
        db.close()
        first.close()


class TimedeltaTest(TempDirTest):
    def test_durations_take_timedelta(self):
        with mapkv.open(self.path(), lock_timeout=datetime.timedelta(milliseconds=200),
                        checkpoint_interval=datetime.timedelta(seconds=2)) as db, \
                mapkv.open(self.path(), lock_timeout=datetime.timedelta(milliseconds=200)) as o:
            with db.transaction():
                start = time.monotonic()
                with self.assertRaises(mapkv.DeadlineExceededError):
                    o[b"k"] = b"v"
                self.assertLess(time.monotonic() - start, 5)
        with mapkv.open_cache(self.path("c"), compute_timeout=datetime.timedelta(seconds=1)):
            pass
        with self.assertRaises(ValueError):
            mapkv.open(self.path(), lock_timeout=datetime.timedelta(seconds=-1))


class PackagingTest(unittest.TestCase):
    def test_names_and_modules(self):
        import pydoc
        for cls in (mapkv.DB, mapkv.ReadTransaction, mapkv.Transaction, mapkv.Iterator,
                    mapkv.Cache, mapkv.Error, mapkv.NotFoundError, mapkv.FileNotFoundError):
            self.assertEqual(cls.__module__, "mapkv", cls)
            self.assertIs(getattr(mapkv, cls.__name__), cls)
        text = pydoc.render_doc(mapkv, renderer=pydoc.plaintext)
        for cls in (mapkv.DB, mapkv.ReadTransaction, mapkv.Transaction, mapkv.Cache):
            text += pydoc.render_doc(cls, renderer=pydoc.plaintext)
        self.assertNotIn("anonymous namespace", text)
        self.assertNotIn("mapkv::python", text)
        self.assertIn("begin(self: mapkv.DB", text)
        self.assertIn("-> mapkv.Transaction", text)

    def test_no_benchmark_hooks(self):
        for name in dir(mapkv) + dir(mapkv._mapkv):
            self.assertNotIn("bench", name.lower())
        for name in ("_bench_get_loop", "_get_releasing_gil", "_get_through_pybind11"):
            self.assertFalse(hasattr(mapkv._mapkv, name), name)

    def test_stubs_ship_and_name_every_public_name(self):
        here = os.path.dirname(mapkv.__file__)
        self.assertTrue(os.path.exists(os.path.join(here, "py.typed")))
        stub = os.path.join(here, "__init__.pyi")
        with open(stub) as f:
            tree = ast.parse(f.read())
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets)
        public = {n for n in dir(mapkv) if not n.startswith("_")} | {"__version__"}
        self.assertEqual(public - names, set())
        stubbed_db = {n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DB"
                      for n in n.body if isinstance(n, ast.FunctionDef)}
        for method in ("begin", "setdefault", "pop", "popitem", "update", "clear", "keys",
                       "snapshots"):
            self.assertIn(method, stubbed_db)
            self.assertTrue(hasattr(mapkv.DB, method), method)


class PoolTest(TempDirTest):
    def run_pool(self, method, nkeys, increments):
        ctx = multiprocessing.get_context(method)
        path = self.path("shared.mapkv")
        markers = os.path.join(self.dir, "markers")
        os.mkdir(markers)
        keys = [b"key%02d" % i for i in range(nkeys)]
        tasks = [k for k in keys for _ in range(4)]  # each key asked by the 4 workers at once
        barrier = ctx.Barrier(4)
        with ctx.Pool(4, initializer=_pool_init, initargs=(path, markers, barrier)) as pool:
            values = pool.map(_pool_compute, tasks, chunksize=1)
            pids = pool.map(_pool_increment, [increments] * 8, chunksize=1)
        self.assertEqual(values, [b"value of " + k for k in tasks])
        runs = {}
        for name in os.listdir(markers):
            runs[name.split(".")[0]] = runs.get(name.split(".")[0], 0) + 1
        self.assertEqual(runs, {k.decode(): 1 for k in keys})  # each fn ran exactly once
        with mapkv.open_cache(path) as cache:
            for k in keys:
                self.assertEqual(cache.get(b"runs:" + k), b"1")
                self.assertEqual(cache.get(k), b"value of " + k)
            self.assertEqual(cache.get(b"total"), b"%d" % (8 * increments))
            s = cache.stats()
            self.assertEqual(s["computes"], nkeys)
            self.assertGreaterEqual(s["waits"], 1)  # some worker waited for another's value
        self.assertEqual(len(set(pids)), 4)  # every worker incremented

    def test_fork_pool(self):
        if "fork" not in multiprocessing.get_all_start_methods():
            self.skipTest("no fork start method")
        self.run_pool("fork", nkeys=20, increments=250)

    def test_spawn_pool(self):
        self.run_pool("spawn", nkeys=5, increments=100)


if __name__ == "__main__":
    unittest.main()
