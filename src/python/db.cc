// mapkv.DB: mapkv::DB as a MutableMapping of bytes to bytes.
//
// The hot calls (db[k], k in db, db.get) are plain CPython slots and a METH_FASTCALL method on
// the pybind11 type: pybind11's generic dispatch costs more than a Get. They read into one buffer
// per handle, which the GIL guards, and copy it into the returned bytes.
//
// Iteration (iter(db), and the views keys(), values(), items() that mapkv/__init__.py makes) is
// lazy, through a read transaction of its own that lives as long as the iterator: nothing is
// copied up front. That transaction is a snapshot, so the database may change while it is
// iterated, from any thread: the iterator yields every key of its snapshot once, where a dict
// would raise RuntimeError. In a format version 1 file the transaction holds the shared lock until
// the iterator is exhausted or dropped; there writes through the same handle from the iterating
// thread fail at once (FailedPreconditionError) rather than wait for that thread.
#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "src/python/common.h"
#include "src/python/handles.h"

namespace mapkv {
namespace python {

std::shared_ptr<DB> PyDB::Handle() const {
  if (db == nullptr) {
    ThrowStatus(absl::FailedPreconditionError(path + ": the database is closed"));
  }
  return db;
}

void PyDB::CheckWritable() const {
  if (!read_txn_holds_lock) return;
  const unsigned long me = PyThread_get_thread_ident();
  if (std::find(reading_threads.begin(), reading_threads.end(), me) != reading_threads.end()) {
    ThrowStatus(absl::FailedPreconditionError(
        path +
        ": this thread holds a read transaction of this handle (an open ReadTransaction or a live "
        "iterator), which in this format version 1 file holds the shared lock that a commit would "
        "wait for: end it first (to change what you iterate, iterate over list(db); `mapkv "
        "compact` rewrites the file in the current version, whose reads are snapshots)"));
  }
}

std::shared_ptr<DB> PyDB::WritableHandle() const {
  std::shared_ptr<DB> h = Handle();
  CheckWritable();
  return h;
}

namespace {

std::unique_ptr<PyDB> OpenDB(py::handle path_obj, const py::kwargs& kwargs) {
  const std::string path = FsPath(path_obj);
  const Options options = ParseOptions("open", kwargs);
  absl::StatusOr<std::unique_ptr<DB>> db;
  {
    py::gil_scoped_release nogil;
    db = DB::Open(path, options);
  }
  if (!db.ok()) ThrowOpenError(db.status(), path);
  auto out = std::make_unique<PyDB>();
  out->db = std::shared_ptr<DB>(std::move(*db));
  out->path = path;
  Stats s;
  {
    py::gil_scoped_release nogil;
    s = out->db->GetStats();
  }
  out->read_txn_holds_lock = s.format_version < 4;
  if (kwargs.contains("max_file_size")) {
    if (s.max_file_size != options.max_file_size) {
      WarnOptionIgnored(path + ": max_file_size " + std::to_string(options.max_file_size) +
                        " is not this file's: it keeps " + std::to_string(s.max_file_size));
    }
  }
  return out;
}

PyObject* ClosedError(const PyDB& db) {
  return SetStatusError(absl::FailedPreconditionError(db.path + ": the database is closed"));
}

// The hot Get: 1 with the value in db->buf, 0 when `key` is absent, -1 with a Python error set.
int HotGet(PyObject* self, PyObject* key, PyDB** out) {
  PyDB* db = Unwrap<PyDB>(self);
  if (db == nullptr) return -1;
  BytesArg k;
  if (!k.Init(key, "key")) return -1;
  if (db->db == nullptr) {
    ClosedError(*db);
    return -1;
  }
  absl::Status s;
  try {
    s = db->db->Get(k.view(), &db->buf);
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
    return -1;
  }
  *out = db;
  if (s.ok()) return 1;
  if (absl::IsNotFound(s)) return 0;
  SetStatusError(s);
  return -1;
}

// The value HotGet left in the buffer, as bytes; a buffer grown past 1 MiB is given back.
PyObject* TakeValue(PyDB* db) {
  PyObject* out =
      PyBytes_FromStringAndSize(db->buf.data(), static_cast<Py_ssize_t>(db->buf.size()));
  if (db->buf.capacity() > (1 << 20)) std::string().swap(db->buf);
  return out;
}

// db[key]: NotFoundError (a KeyError) when absent.
PyObject* DBSubscript(PyObject* self, PyObject* key) {
  PyDB* db = nullptr;
  const int found = HotGet(self, key, &db);
  if (found < 0) return nullptr;
  return found ? TakeValue(db) : SetKeyError(key);
}

// key in db.
int DBContains(PyObject* self, PyObject* key) {
  PyDB* db = nullptr;
  return HotGet(self, key, &db);
}

// db.get(key, default=None).
PyObject* DBGetMethod(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* key = nullptr;
  PyObject* dflt = Py_None;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs >= 1) key = args[0];
  if (nargs >= 2) dflt = args[1];
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "get() takes at most 2 arguments (%zd given)", nargs);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, i);
    PyObject* value = args[nargs + i];
    if (PyUnicode_CompareWithASCIIString(name, "key") == 0 && key == nullptr) {
      key = value;
    } else if (PyUnicode_CompareWithASCIIString(name, "default") == 0 && nargs < 2) {
      dflt = value;
    } else {
      PyErr_Format(PyExc_TypeError, "get() got an unexpected keyword argument '%U'", name);
      return nullptr;
    }
  }
  if (key == nullptr) {
    PyErr_SetString(PyExc_TypeError, "get() missing required argument 'key'");
    return nullptr;
  }
  PyDB* db = nullptr;
  const int found = HotGet(self, key, &db);
  if (found < 0) return nullptr;
  if (found) return TakeValue(db);
  Py_INCREF(dflt);
  return dflt;
}

PyMethodDef g_db_get_def = {
    "get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(DBGetMethod)),
    METH_FASTCALL | METH_KEYWORDS,
    "get(key, default=None) -> bytes: the value of key, or default when absent."};

// db[key] through pybind11's dispatch: the definition help() shows; the slot above replaces it.
py::bytes GetItem(PyDB& self, py::handle key) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  DB& db = *self.Handle();
  const absl::Status s = db.Get(k.view(), &self.buf);
  if (absl::IsNotFound(s)) ThrowKeyError(key);
  if (!s.ok()) ThrowStatus(s);
  return ToBytes(self.buf);
}

void Put(PyDB& self, py::handle key, py::handle value) {
  BytesArg k, v;
  k.InitOrThrow(key, "key");
  v.InitOrThrow(value, "value");
  std::shared_ptr<DB> db = self.WritableHandle();
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = db->Put(k.view(), v.view());
  }
  if (!s.ok()) ThrowStatus(s);
}

// Runs `fn(WriteTxn&)` in one write transaction with the GIL released, and commits it when fn
// returns OK. fn touches no Python object.
template <class Fn>
absl::Status InWriteTxn(PyDB& self, Fn&& fn) {
  std::shared_ptr<DB> db = self.WritableHandle();
  py::gil_scoped_release nogil;
  absl::StatusOr<WriteTxn> txn = db->BeginWrite();
  if (!txn.ok()) return txn.status();
  absl::Status s = fn(*db, *txn);
  if (!s.ok()) return s;
  return txn->Commit();
}

// Deletes `key`; with `must_exist`, NotFoundError (a KeyError) when it is absent, checked in the
// same transaction.
void Delete(PyDB& self, py::handle key, bool must_exist) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  if (!must_exist) {
    std::shared_ptr<DB> db = self.WritableHandle();
    absl::Status s;
    {
      py::gil_scoped_release nogil;
      s = db->Delete(k.view());
    }
    if (!s.ok()) ThrowStatus(s);
    return;
  }
  bool absent = false;
  const absl::Status s = InWriteTxn(self, [&](DB&, WriteTxn& txn) -> absl::Status {
    absl::StatusOr<std::string_view> cur = txn.Get(k.view());
    if (absl::IsNotFound(cur.status())) {
      absent = true;
      return absl::CancelledError();  // nothing to commit
    }
    if (!cur.ok()) return cur.status();
    return txn.Delete(k.view());
  });
  if (absent) ThrowKeyError(key);
  if (!s.ok()) ThrowStatus(s);
}

// setdefault(key, default): the value of key, or stores default there and returns it; in one
// transaction.
py::object SetDefault(PyDB& self, py::handle key, py::handle dflt) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  BytesArg v;
  v.InitOrThrow(dflt, "value");
  std::string found;
  bool had = false;
  const absl::Status s = InWriteTxn(self, [&](DB&, WriteTxn& txn) -> absl::Status {
    absl::StatusOr<std::string_view> cur = txn.Get(k.view());
    if (cur.ok()) {
      found.assign(cur->data(), cur->size());
      had = true;
      return absl::CancelledError();  // nothing to commit
    }
    if (!absl::IsNotFound(cur.status())) return cur.status();
    return txn.Put(k.view(), v.view());
  });
  if (had) return ToBytes(found);
  if (!s.ok()) ThrowStatus(s);
  return py::reinterpret_borrow<py::object>(dflt);
}

// pop(key[, default]): removes key and returns its value, in one transaction.
py::object Pop(PyDB& self, py::handle key, py::args rest) {
  if (rest.size() > 1) throw py::type_error("pop expected at most 2 arguments");
  BytesArg k;
  k.InitOrThrow(key, "key");
  std::string found;
  bool absent = false;
  const absl::Status s = InWriteTxn(self, [&](DB&, WriteTxn& txn) -> absl::Status {
    absl::StatusOr<std::string_view> cur = txn.Get(k.view());
    if (absl::IsNotFound(cur.status())) {
      absent = true;
      return absl::CancelledError();
    }
    if (!cur.ok()) return cur.status();
    found.assign(cur->data(), cur->size());
    return txn.Delete(k.view());
  });
  if (absent) {
    if (rest.size() == 1) return rest[0];
    ThrowKeyError(key);
  }
  if (!s.ok()) ThrowStatus(s);
  return ToBytes(found);
}

// popitem(): removes some (key, value) pair and returns it; KeyError when empty.
py::tuple PopItem(PyDB& self) {
  std::string key, value;
  bool empty = true;
  const absl::Status s = InWriteTxn(self, [&](DB& db, WriteTxn& txn) -> absl::Status {
    {
      // The writer's own lock keeps every other commit out: what this read finds is what the
      // transaction sees. It ends before the commit, which in a format version 1 file would
      // wait for it.
      absl::StatusOr<ReadTxn> read = db.BeginRead();
      if (!read.ok()) return read.status();
      absl::Status r = read->ForEach([&](std::string_view k, std::string_view v) {
        key.assign(k.data(), k.size());
        value.assign(v.data(), v.size());
        empty = false;
        return false;
      });
      if (!r.ok()) return r;
    }
    if (empty) return absl::CancelledError();
    return txn.Delete(key);
  });
  if (empty && (s.ok() || absl::IsCancelled(s))) {
    PyErr_SetString(ErrorClass(absl::StatusCode::kNotFound), "popitem(): the database is empty");
    throw py::error_already_set();
  }
  if (!s.ok()) ThrowStatus(s);
  return py::make_tuple(ToBytes(key), ToBytes(value));
}

// clear(): deletes every key, in one transaction.
void Clear(PyDB& self) {
  const absl::Status s = InWriteTxn(self, [&](DB& db, WriteTxn& txn) -> absl::Status {
    std::vector<std::string> keys;
    {
      absl::StatusOr<ReadTxn> read = db.BeginRead();  // as in PopItem
      if (!read.ok()) return read.status();
      keys.reserve(read->Count());
      absl::Status r = read->ForEach([&](std::string_view k, std::string_view) {
        keys.emplace_back(k);
        return true;
      });
      if (!r.ok()) return r;
    }
    for (const std::string& k : keys) {
      absl::Status d = txn.Delete(k);
      if (!d.ok()) return d;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) ThrowStatus(s);
}

// update(other=(), **kwargs): every pair of a mapping (by its keys()) or of an iterable of pairs,
// then of kwargs, in one transaction.
void Update(PyDB& self, py::args args, py::kwargs kwargs) {
  if (args.size() > 1) throw py::type_error("update expected at most 1 argument");
  std::vector<py::object> held;  // keeps every key and value alive while BytesArg reads them
  auto add = [&](py::handle k, py::handle v) {
    held.push_back(py::reinterpret_borrow<py::object>(k));
    held.push_back(py::reinterpret_borrow<py::object>(v));
  };
  if (args.size() == 1) {
    py::handle other = args[0];
    if (py::hasattr(other, "keys")) {
      for (py::handle k : other.attr("keys")()) add(k, other[k]);
    } else {
      for (py::handle item : other) {
        py::sequence pair = py::reinterpret_borrow<py::sequence>(item);
        if (!py::isinstance<py::sequence>(item) || py::len(item) != 2) {
          throw py::type_error("mapkv: update() takes a mapping or an iterable of (key, value)");
        }
        add(pair[0], pair[1]);
      }
    }
  }
  for (auto item : kwargs) add(item.first, item.second);
  std::vector<BytesArg> bytes(held.size());
  for (size_t i = 0; i < held.size(); ++i) {
    bytes[i].InitOrThrow(held[i], i % 2 == 0 ? "key" : "value");
  }
  const absl::Status s = InWriteTxn(self, [&](DB&, WriteTxn& txn) -> absl::Status {
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
      absl::Status p = txn.Put(bytes[i].view(), bytes[i + 1].view());
      if (!p.ok()) return p;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) ThrowStatus(s);
}

size_t Len(PyDB& self) {
  std::shared_ptr<DB> db = self.Handle();
  absl::StatusOr<uint64_t> n;
  {
    py::gil_scoped_release nogil;
    absl::StatusOr<ReadTxn> txn = db->BeginRead();
    if (txn.ok()) {
      n = txn->Count();
    } else {
      n = txn.status();
    }
  }
  if (!n.ok()) ThrowStatus(n.status());
  return *n;
}

// Runs `fn` on the handle with the GIL released.
template <class Fn>
auto Released(PyDB& self, Fn&& fn) {
  std::shared_ptr<DB> db = self.Handle();
  py::gil_scoped_release nogil;
  return fn(*db);
}

void Close(PyDB& self) {
  std::shared_ptr<DB> db = std::move(self.db);
  py::gil_scoped_release nogil;
  db.reset();  // closes the file unless a transaction or another thread's call still holds it
}

py::list Snapshots(PyDB& self) {
  const std::vector<SnapshotInfo> infos = Released(self, [](DB& d) { return d.Snapshots(); });
  py::list out;
  for (const SnapshotInfo& i : infos) out.append(SnapshotDict(i));
  return out;
}

void Verify(PyDB& self) {
  std::vector<VerifyProblem> problems;
  const absl::Status s = Released(self, [&](DB& db) { return db.Verify(&problems); });
  if (s.ok()) return;
  if (!problems.empty()) {
    py::list list;
    for (const VerifyProblem& p : problems) {
      py::dict d;
      d["offset"] = p.offset;
      d["kind"] = p.kind;
      d["detail"] = p.detail;
      list.append(d);
    }
    py::object cls = py::reinterpret_borrow<py::object>(ErrorClass(s.code()));
    py::object e = cls(std::string(s.message()));
    e.attr("problems") = list;
    PyErr_SetObject(cls.ptr(), e.ptr());
    throw py::error_already_set();
  }
  ThrowStatus(s);
}

std::unique_ptr<PyTxn> NewWriteTxn(py::object self) {
  auto t = std::make_unique<PyTxn>();
  t->path = self.cast<PyDB&>().path;
  t->owner = std::move(self);
  return t;
}

std::unique_ptr<PyIter> Iterate(py::object self, PyIter::What what) {
  return MakeIter(py::cast(BeginRead(std::move(self), false)), what, /*own_txn=*/true);
}

// Installs the hot calls as CPython slots and a fast method of the DB type, over pybind11's
// definitions of the same names (which stay for introspection: help(mapkv.DB.__getitem__)).
void InstallFastPaths(py::handle db_type) {
  auto* type = reinterpret_cast<PyTypeObject*>(db_type.ptr());
  type->tp_as_mapping->mp_subscript = DBSubscript;
  type->tp_as_sequence->sq_contains = DBContains;
  PyObject* get = PyDescr_NewMethod(type, &g_db_get_def);
  if (get == nullptr || PyObject_SetAttrString(db_type.ptr(), "get", get) != 0) {
    Py_XDECREF(get);
    throw py::error_already_set();
  }
  Py_DECREF(get);
  PyType_Modified(type);
}

}  // namespace

void DefineDB(py::module_& m) {
  auto db = py::reinterpret_borrow<py::class_<PyDB>>(m.attr("DB"));
  db.def("__getitem__", &GetItem, py::arg("key"),
         "db[key] -> bytes; NotFoundError (a KeyError) when absent.")
      .def(
          "__setitem__", [](PyDB& self, py::handle k, py::handle v) { Put(self, k, v); },
          py::arg("key"), py::arg("value"))
      .def("put", &Put, py::arg("key"), py::arg("value"),
           "put(key, value): stores value at key, committed at once.")
      .def(
          "__delitem__", [](PyDB& self, py::handle k) { Delete(self, k, true); }, py::arg("key"),
          "del db[key]: NotFoundError (a KeyError) when absent.")
      .def(
          "delete", [](PyDB& self, py::handle k) { Delete(self, k, false); }, py::arg("key"),
          "delete(key): removes key; no error when it is absent.")
      .def("setdefault", &SetDefault, py::arg("key"), py::arg("default"),
           "The value of key; when absent, stores default there and returns it (one "
           "transaction).")
      .def("pop", &Pop, py::arg("key"),
           "pop(key[, default]) -> bytes: removes key and returns its value; default (or "
           "NotFoundError, a KeyError) when absent. One transaction.")
      .def("popitem", &PopItem,
           "Removes some key and returns (key, value); NotFoundError (a KeyError) when empty.")
      .def("update", &Update,
           "update([other], **kwargs): stores every pair of a mapping or an iterable of "
           "(key, value) pairs, in one transaction.")
      .def("clear", &Clear, "Deletes every key, in one transaction.")
      .def(
          "__contains__",
          [](PyDB& self, py::handle key) {
            PyDB* db = nullptr;
            const int found = HotGet(SelfOf(self).ptr(), key.ptr(), &db);
            if (found < 0) throw py::error_already_set();
            return found == 1;
          },
          py::arg("key"), "key in db.")
      .def("__len__", &Len)
      .def(
          "__iter__", [](PyDB& self) { return Iterate(SelfOf(self), PyIter::What::kKeys); },
          "Iterates over the keys lazily, through a read transaction held until the iterator is "
          "exhausted or dropped: a snapshot, so the database may change meanwhile and every key "
          "of the snapshot comes once (in a format version 1 file it holds the shared lock, and "
          "writes through this handle from this thread fail meanwhile).")
      .def(
          "_iter_values", [](PyDB& self) { return Iterate(SelfOf(self), PyIter::What::kValues); },
          "The lazy iterator of values(), as __iter__.")
      .def(
          "_iter_items", [](PyDB& self) { return Iterate(SelfOf(self), PyIter::What::kItems); },
          "The lazy iterator of items(), as __iter__.")
      .def(
          "begin",
          [](PyDB& self, bool write, bool buffers) -> py::object {
            if (!write) return py::cast(BeginRead(SelfOf(self), buffers));
            if (buffers) throw py::value_error("mapkv: buffers=True is for read transactions");
            py::object t = py::cast(NewWriteTxn(SelfOf(self)));
            t.attr("__enter__")();
            return t;
          },
          py::arg("write") = false, py::arg("buffers") = false,
          R"doc(begin(write=False, buffers=False) -> ReadTransaction | Transaction

A transaction, begun now (as py-lmdb's Environment.begin). Read (the default): a snapshot, the
database as of now until it ends (`with db.begin() as txn:`, or txn.abort()), while commits of
every process, this thread's included, go on; snapshots() lists it. In a format version 1 file it
holds the shared lock instead: commits of every process wait for it, and writes through this
handle from this thread fail meanwhile. With buffers=True its values are read-only memoryviews
of the file itself, valid until the transaction ends. write=True: a write transaction, as
transaction() begun by `with`.)doc")
      .def(
          "transaction", [](PyDB& self) { return NewWriteTxn(SelfOf(self)); },
          R"doc(A write transaction, begun by `with`: committed when the block ends normally,
aborted when it raises. The one writer across all processes: other writers wait for it (up to
lock_timeout), readers do not. Inside, t[k], t[k] = v, del t[k], k in t, t.get() see its own
writes.)doc")
      .def(
          "checkpoint",
          [](PyDB& self) {
            const absl::Status s = Released(self, [](DB& d) { return d.Checkpoint(); });
            if (!s.ok()) ThrowStatus(s);
          },
          "Flushes every committed byte to disk and records a checkpoint.")
      .def(
          "stats",
          [](PyDB& self) { return StatsDict(Released(self, [](DB& d) { return d.GetStats(); })); },
          "The database's shape as a dict (mapkv::Stats).")
      .def("snapshots", &Snapshots, R"doc(The open read transactions (snapshots) of the file, as a
list of dicts (mapkv::SnapshotInfo), one per handle of any live process that holds some: pid,
snapshots (how many that handle holds), since_unix_ms (when its oldest began), tail (the log's
committed end that one reads at) and pinned_bytes (log bytes committed since then, kept readable
for it). A format version 1 file's read transactions are not snapshots and are not listed.)doc")
      .def("verify", &Verify, R"doc(Checks the whole file. Returns None when all is well; raises
DataLossError otherwise, whose `problems` lists dicts of offset, kind and detail.)doc")
      .def("close", &Close, "Closes the handle; later calls raise FailedPreconditionError.")
      .def_property_readonly("path", [](const PyDB& self) { return self.path; })
      .def_property_readonly("closed", [](const PyDB& self) { return self.db == nullptr; })
      .def(
          "__enter__", [](PyDB& self) -> PyDB& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](PyDB& self, py::args) { Close(self); })
      .def("__repr__", [](const PyDB& self) {
        return "<mapkv.DB '" + self.path + (self.db == nullptr ? "' (closed)>" : "'>");
      });
  InstallFastPaths(db);  // db[k], k in db, db.get
  MadeByFunctionsOnly(db);

  m.def("open", &OpenDB, py::arg("path"),
        R"doc(open(path, **options) -> DB

Opens or creates the database at path (str, bytes or os.PathLike). Options, as mapkv::Options:
create_if_missing=True, error_if_exists=False, read_only=False, exclusive=False, file_mode=0o600,
durability='none' ('none', 'periodic' or 'sync'), huge_pages=True, max_file_size=64 GiB,
initial_file_size=1 MiB, initial_index_slots=1024, verify_checksums=True,
checkpoint_interval=1.0 (seconds or a timedelta), checkpoint_bytes=64 MiB, lock_timeout=10.0
(seconds or a timedelta), max_snapshot_bytes=0 (no limit; past it a read transaction's reads
raise FailedPreconditionError, "snapshot too old"), compact_ratio=1.5 (past that many times the live
data the writer cleans the log, giving its start back to the file system; in format 4 commits
start an online compaction instead, past compact_min_garbage=8 MiB of garbage too; 0: neither),
create_format_version=0 (a new database's format: 0 the newest, 5; or 4, which older builds open
too), info_log=None (a callable taking one str line; None: stderr). An unknown
keyword is a TypeError. A path that names nothing (with create_if_missing=False) raises
FileNotFoundError, one that names a directory IsADirectoryError (both also mapkv.Error). A
max_file_size that an existing file does not take warns with OptionIgnoredWarning.)doc");
}

}  // namespace python
}  // namespace mapkv
