// The Python module `mapkv` (docs/python.md): mapkv::DB as a mapping of bytes to bytes,
// mapkv::Cache, and absl::Status codes as exceptions.
//
// The GIL: every call that may wait for the cross-process lock (open, writes, commits,
// checkpoints, verify, iteration, len, stats, close, get_or_compute) runs with the GIL released,
// so other Python threads run while it waits. Gets keep it: DB::Get reads without the lock (a
// seqlock), waiting only while a commit publishes, and takes the shared side only when publishes
// keep overlapping it or one never ends (a dead writer); no commit of this process needs the GIL
// to finish. Releasing and taking the GIL again would cost more than the Get itself
// (bench/python_bench.py: 116 ns beside a 60 ns Get, 1,000 keys).
//
// The hot calls (db[k], k in db, db.get) are plain CPython slots and a METH_FASTCALL method on
// the pybind11 type: pybind11's generic dispatch costs more than a Get (79 ns, the same
// benchmark). They read into one buffer per handle, which the GIL guards, and copy it into the
// returned bytes.
//
// Lifetimes: a handle's C++ object is a shared_ptr that each call releasing the GIL copies first,
// and that each open transaction holds: close() while another thread waits in a call, or while a
// transaction is open, drops this object's reference; the file closes when the last one ends.
#include <Python.h>
#include <pybind11/eval.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "mapkv/options.h"
#include "mapkv/stats.h"

namespace py = pybind11;

namespace mapkv {
namespace python {
namespace {

// ---- Exceptions ----

// Defined in Python so that they can inherit from the built-in exceptions they stand for, and be
// pickled by name (multiprocessing sends a worker's exception back to the parent).
constexpr const char* kExceptionSource = R"py(
class Error(Exception):
    """Base class of mapkv's errors. `code` names the absl::Status code; the message is the
    status message, which names the file (and the key where one is concerned)."""
    code = "UNKNOWN"

class NotFoundError(Error, KeyError):
    """A key that is absent (args[0] is the key, as for dict), or a missing file."""
    code = "NOT_FOUND"
    def __str__(self):
        if len(self.args) == 1 and isinstance(self.args[0], str):
            return self.args[0]
        return KeyError.__str__(self)

class InvalidArgumentError(Error, ValueError):
    """Not a mapkv file, a key or value too large, a counter that is no integer, ..."""
    code = "INVALID_ARGUMENT"

class AlreadyExistsError(Error, FileExistsError):
    """The file exists and error_if_exists was given."""
    code = "ALREADY_EXISTS"

class PermissionDeniedError(Error, PermissionError):
    """A write through a read-only handle, or the OS refused access to the file."""
    code = "PERMISSION_DENIED"

class DeadlineExceededError(Error, TimeoutError):
    """A lock not had within lock_timeout, or a value not computed within compute_timeout."""
    code = "DEADLINE_EXCEEDED"

class ResourceExhaustedError(Error):
    """The file would grow past max_file_size, or the disk is full."""
    code = "RESOURCE_EXHAUSTED"

class FailedPreconditionError(Error):
    """A cache opened as a database (or the reverse), a handle used after fork() or close(), a
    file held exclusively elsewhere, a finished transaction, ..."""
    code = "FAILED_PRECONDITION"

class DataLossError(Error):
    """Damaged data; the message gives the offset. verify() attaches `problems`."""
    code = "DATA_LOSS"
    problems = ()

class OutOfRangeError(Error, OverflowError):
    """increment() past 64 bits."""
    code = "OUT_OF_RANGE"

class CancelledError(Error):
    code = "CANCELLED"

class UnknownError(Error):
    code = "UNKNOWN"

class AbortedError(Error):
    code = "ABORTED"

class UnimplementedError(Error, NotImplementedError):
    code = "UNIMPLEMENTED"

class InternalError(Error):
    code = "INTERNAL"

class UnavailableError(Error):
    code = "UNAVAILABLE"

class UnauthenticatedError(Error):
    code = "UNAUTHENTICATED"
)py";

// The exception class of each absl::StatusCode (indexed by its value, 0..16); never freed, as the
// module is never unloaded.
PyObject* g_errors[17] = {};
PyObject* g_not_found = nullptr;

PyObject* ErrorClass(absl::StatusCode code) {
  const int i = static_cast<int>(code);
  if (i > 0 && i < 17 && g_errors[i] != nullptr) return g_errors[i];
  return g_errors[static_cast<int>(absl::StatusCode::kUnknown)];
}

// Sets the Python error for a failed status; returns nullptr for the CPython slots to return.
PyObject* SetStatusError(const absl::Status& s) {
  const std::string message(s.message());
  PyErr_SetString(ErrorClass(s.code()), message.c_str());
  return nullptr;
}

[[noreturn]] void ThrowStatus(const absl::Status& s) {
  SetStatusError(s);
  throw py::error_already_set();
}

// A missing key: NotFoundError(key), as dict raises KeyError(key).
PyObject* SetKeyError(PyObject* key) {
  PyObject* e = PyObject_CallOneArg(g_not_found, key);
  if (e != nullptr) {
    PyErr_SetObject(g_not_found, e);
    Py_DECREF(e);
  }
  return nullptr;
}

[[noreturn]] void ThrowKeyError(py::handle key) {
  SetKeyError(key.ptr());
  throw py::error_already_set();
}

// ---- Bytes in ----

// A key or value passed in: bytes (read in place), or any object with a contiguous buffer
// (bytearray, memoryview, array, ...), held with the buffer protocol so that it cannot be resized
// while a call that released the GIL reads it. str is refused: which encoding is the caller's
// choice. Construct and destroy with the GIL held.
class BytesArg {
 public:
  BytesArg() = default;
  BytesArg(const BytesArg&) = delete;
  BytesArg& operator=(const BytesArg&) = delete;
  ~BytesArg() {
    if (has_view_) PyBuffer_Release(&view_);
  }

  // False with a TypeError set when `obj` is no bytes-like object; `what` names the argument.
  bool Init(PyObject* obj, const char* what) {
    if (PyBytes_CheckExact(obj)) {
      data_ = std::string_view(PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
      return true;
    }
    if (PyUnicode_Check(obj)) {
      PyErr_Format(PyExc_TypeError,
                   "mapkv %ss are bytes, not str: encode it first (for example s.encode())", what);
      return false;
    }
    if (!PyObject_CheckBuffer(obj) || PyObject_GetBuffer(obj, &view_, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError,
                   "mapkv %ss are bytes-like (bytes, bytearray, a contiguous memoryview), not %s",
                   what, Py_TYPE(obj)->tp_name);
      return false;
    }
    has_view_ = true;
    data_ = std::string_view(static_cast<const char*>(view_.buf), view_.len);
    return true;
  }
  void InitOrThrow(py::handle obj, const char* what) {
    if (!Init(obj.ptr(), what)) throw py::error_already_set();
  }

  std::string_view view() const { return data_; }

 private:
  std::string_view data_;
  Py_buffer view_{};
  bool has_view_ = false;
};

py::bytes ToBytes(std::string_view s) { return py::bytes(s.data(), s.size()); }

// ---- Options ----

std::string FsPath(py::handle path) {
  PyObject* p = PyOS_FSPath(path.ptr());
  if (p == nullptr) throw py::error_already_set();
  py::object fspath = py::reinterpret_steal<py::object>(p);
  if (PyUnicode_Check(p)) {
    PyObject* b = PyUnicode_EncodeFSDefault(p);
    if (b == nullptr) throw py::error_already_set();
    fspath = py::reinterpret_steal<py::object>(b);
  }
  std::string out(PyBytes_AS_STRING(fspath.ptr()), PyBytes_GET_SIZE(fspath.ptr()));
  if (out.find('\0') != std::string::npos) throw py::value_error("mapkv: a path has no NUL byte");
  return out;
}

bool OptionBool(const std::string& name, py::handle v) {
  if (!PyBool_Check(v.ptr())) {
    throw py::type_error("mapkv: option " + name + " is a bool, not " +
                         std::string(Py_TYPE(v.ptr())->tp_name));
  }
  return v.ptr() == Py_True;
}

uint64_t OptionUint(const std::string& name, py::handle v) {
  if (PyBool_Check(v.ptr()) || !PyLong_Check(v.ptr())) {
    throw py::type_error("mapkv: option " + name + " is an int, not " +
                         std::string(Py_TYPE(v.ptr())->tp_name));
  }
  const unsigned long long x = PyLong_AsUnsignedLongLong(v.ptr());
  if (x == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error("mapkv: option " + name + " is out of range (0 to 2**64 - 1)");
  }
  return x;
}

// Seconds (int or float) as milliseconds, rounded to the nearest; `min_ms` is the least allowed.
std::chrono::milliseconds Seconds(const std::string& name, py::handle v, int64_t min_ms) {
  if (PyBool_Check(v.ptr()) || !(PyLong_Check(v.ptr()) || PyFloat_Check(v.ptr()))) {
    throw py::type_error("mapkv: " + name + " is a number of seconds, not " +
                         std::string(Py_TYPE(v.ptr())->tp_name));
  }
  const double s = PyFloat_AsDouble(v.ptr());
  if (PyErr_Occurred()) throw py::error_already_set();
  if (!std::isfinite(s) || s < 0 || s > 1e12) {
    throw py::value_error("mapkv: " + name + " must be a finite number of seconds >= 0");
  }
  int64_t ms = std::llround(s * 1000);
  if (ms < min_ms) {
    if (s <= 0) throw py::value_error("mapkv: " + name + " must be > 0 seconds");
    ms = min_ms;
  }
  return std::chrono::milliseconds(ms);
}

// A Python callable held by a C++ object that may be destroyed without the GIL (the info_log of
// a handle closed with the GIL released).
std::shared_ptr<py::object> HoldCallable(py::handle fn) {
  return std::shared_ptr<py::object>(new py::object(py::reinterpret_borrow<py::object>(fn)),
                                     [](py::object* o) {
                                       if (!Py_IsInitialized()) return;  // leaked at exit
                                       py::gil_scoped_acquire gil;
                                       delete o;
                                     });
}

// The keyword options of open() and open_cache() (Options fields); `function` names the caller in
// a TypeError about an unknown keyword. Cache-only keywords are taken out first by the caller.
Options ParseOptions(const char* function, const py::kwargs& kwargs) {
  Options o;
  for (auto item : kwargs) {
    const std::string name = py::str(item.first);
    py::handle v = item.second;
    if (name == "create_if_missing") {
      o.create_if_missing = OptionBool(name, v);
    } else if (name == "error_if_exists") {
      o.error_if_exists = OptionBool(name, v);
    } else if (name == "read_only") {
      o.read_only = OptionBool(name, v);
    } else if (name == "exclusive") {
      o.exclusive = OptionBool(name, v);
    } else if (name == "huge_pages") {
      o.huge_pages = OptionBool(name, v);
    } else if (name == "verify_checksums") {
      o.verify_checksums = OptionBool(name, v);
    } else if (name == "file_mode") {
      const uint64_t mode = OptionUint(name, v);
      if (mode > 07777)
        throw py::value_error("mapkv: option file_mode is permission bits (0o7777)");
      o.file_mode = static_cast<uint32_t>(mode);
    } else if (name == "durability") {
      const std::string d = py::isinstance<py::str>(v) ? std::string(py::str(v)) : "";
      if (d == "none") {
        o.durability = Durability::kNone;
      } else if (d == "periodic") {
        o.durability = Durability::kPeriodic;
      } else if (d == "sync") {
        o.durability = Durability::kSync;
      } else {
        throw py::value_error("mapkv: option durability is 'none', 'periodic' or 'sync', not " +
                              std::string(py::repr(v)));
      }
    } else if (name == "max_file_size") {
      o.max_file_size = OptionUint(name, v);
    } else if (name == "initial_file_size") {
      o.initial_file_size = OptionUint(name, v);
    } else if (name == "initial_index_slots") {
      o.initial_index_slots = OptionUint(name, v);
    } else if (name == "checkpoint_bytes") {
      o.checkpoint_bytes = OptionUint(name, v);
    } else if (name == "checkpoint_interval") {
      o.checkpoint_interval = Seconds("option " + name, v, 0);
    } else if (name == "lock_timeout") {
      o.lock_timeout = Seconds("option " + name, v, 0);
    } else if (name == "info_log") {
      if (v.is_none()) continue;
      if (!PyCallable_Check(v.ptr())) throw py::type_error("mapkv: option info_log is a callable");
      std::shared_ptr<py::object> fn = HoldCallable(v);
      o.info_log = [fn](std::string_view line) {
        py::gil_scoped_acquire gil;
        try {
          (*fn)(py::str(line.data(), line.size()));
        } catch (py::error_already_set& e) {
          e.discard_as_unraisable("mapkv info_log");
        }
      };
    } else {
      throw py::type_error(std::string(function) + "() got an unexpected keyword argument '" +
                           name + "'");
    }
  }
  return o;
}

// ---- Statistics ----

py::dict StatsDict(const Stats& s) {
  py::dict d;
  d["keys"] = s.keys;
  d["file_size"] = s.file_size;
  d["max_file_size"] = s.max_file_size;
  d["log_bytes"] = s.log_bytes;
  d["live_bytes"] = s.live_bytes;
  d["garbage_bytes"] = s.garbage_bytes;
  d["index_capacity"] = s.index_capacity;
  d["index_used"] = s.index_used;
  d["index_load"] = s.index_load;
  d["commits"] = s.commits;
  d["checkpoints"] = s.checkpoints;
  d["last_checkpoint_unix_ms"] = s.last_checkpoint_unix_ms;
  d["open_handles"] = s.open_handles;
  d["format_version"] = s.format_version;
  d["is_cache"] = s.is_cache;
  d["rebuilt_index"] = s.rebuilt_index;
  d["rebuild_records"] = s.rebuild_records;
  d["rebuild_micros"] = s.rebuild_micros;
  d["recovered_commits"] = s.recovered_commits;
  d["cache_capacity"] = s.cache_capacity;
  d["evictions"] = s.evictions;
  return d;
}

// ---- DB ----

struct PyDB {
  std::shared_ptr<DB> db;  // null once closed
  std::string path;
  std::string buf;  // the hot Gets' buffer (the GIL guards it)

  // The handle for a call that releases the GIL (a copy keeps it alive through close()).
  std::shared_ptr<DB> Handle() const {
    if (db == nullptr) {
      ThrowStatus(absl::FailedPreconditionError(path + ": the database is closed"));
    }
    return db;
  }
};

struct PyTxn {
  py::object owner;        // the mapkv.DB it was made by
  std::shared_ptr<DB> db;  // from begin to end: keeps the handle open while it lives
  std::string path;
  std::optional<WriteTxn> txn;
  enum class State { kNew, kActive, kDone } state = State::kNew;
  unsigned long thread = 0;  // the thread that began it: a WriteTxn belongs to one thread

  WriteTxn& Active() {
    if (state != State::kActive) {
      ThrowStatus(absl::FailedPreconditionError(
          path + (state == State::kNew
                      ? ": the transaction has not begun (use it as `with db.transaction() as t:`)"
                      : ": the transaction is finished (committed or aborted)")));
    }
    if (PyThread_get_thread_ident() != thread) {
      ThrowStatus(absl::FailedPreconditionError(
          path + ": a transaction is used only by the thread that began it"));
    }
    return *txn;
  }
};

py::object OpenDB(py::handle path_obj, const py::kwargs& kwargs) {
  const std::string path = FsPath(path_obj);
  const Options options = ParseOptions("open", kwargs);
  absl::StatusOr<std::unique_ptr<DB>> db;
  {
    py::gil_scoped_release nogil;
    db = DB::Open(path, options);
  }
  if (!db.ok()) ThrowStatus(db.status());
  auto out = std::make_unique<PyDB>();
  out->db = std::shared_ptr<DB>(std::move(*db));
  out->path = path;
  return py::cast(std::move(out));
}

// The pybind11 object's C++ value, for the CPython slots; nullptr with TypeError when it has none.
template <class T>
T* Unwrap(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  void* v = inst->get_value_and_holder().value_ptr();
  if (v == nullptr) PyErr_SetString(PyExc_TypeError, "mapkv: an uninitialised handle");
  return static_cast<T*>(v);
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

void Put(PyDB& self, py::handle key, py::handle value) {
  BytesArg k, v;
  k.InitOrThrow(key, "key");
  v.InitOrThrow(value, "value");
  std::shared_ptr<DB> db = self.Handle();
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = db->Put(k.view(), v.view());
  }
  if (!s.ok()) ThrowStatus(s);
}

// Deletes `key`; with `must_exist`, NotFoundError (a KeyError) when it is absent, checked in the
// same transaction.
void Delete(PyDB& self, py::handle key, bool must_exist) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  std::shared_ptr<DB> db = self.Handle();
  absl::Status s;
  bool absent = false;
  {
    py::gil_scoped_release nogil;
    if (!must_exist) {
      s = db->Delete(k.view());
    } else {
      absl::StatusOr<WriteTxn> txn = db->BeginWrite();
      s = txn.status();
      if (txn.ok()) {
        absl::StatusOr<std::string_view> cur = txn->Get(k.view());
        if (absl::IsNotFound(cur.status())) {
          absent = true;
        } else if (!cur.ok()) {
          s = cur.status();
        } else {
          s = txn->Delete(k.view());
          if (s.ok()) s = txn->Commit();
        }
      }
    }
  }
  if (absent) ThrowKeyError(key);
  if (!s.ok()) ThrowStatus(s);
}

// A snapshot copied out of one read transaction (the shared lock is held only while copying).
struct Copied {
  std::vector<std::pair<std::string, std::string>> items;
};

Copied ReadAll(PyDB& self, bool values) {
  std::shared_ptr<DB> db = self.Handle();
  Copied snap;
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    absl::StatusOr<ReadTxn> txn = db->BeginRead();
    s = txn.status();
    if (txn.ok()) {
      snap.items.reserve(txn->Count());
      s = txn->ForEach([&](std::string_view k, std::string_view v) {
        snap.items.emplace_back(std::string(k), values ? std::string(v) : std::string());
        return true;
      });
    }
  }
  if (!s.ok()) ThrowStatus(s);
  return snap;
}

py::list Keys(PyDB& self) {
  Copied snap = ReadAll(self, false);
  py::list out(snap.items.size());
  for (size_t i = 0; i < snap.items.size(); ++i) out[i] = ToBytes(snap.items[i].first);
  return out;
}

py::list Values(PyDB& self) {
  Copied snap = ReadAll(self, true);
  py::list out(snap.items.size());
  for (size_t i = 0; i < snap.items.size(); ++i) out[i] = ToBytes(snap.items[i].second);
  return out;
}

py::list Items(PyDB& self) {
  Copied snap = ReadAll(self, true);
  py::list out(snap.items.size());
  for (size_t i = 0; i < snap.items.size(); ++i) {
    out[i] = py::make_tuple(ToBytes(snap.items[i].first), ToBytes(snap.items[i].second));
  }
  return out;
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

// ---- Transactions ----

void BeginTxn(PyTxn& t) {
  if (t.state != PyTxn::State::kNew) {
    ThrowStatus(absl::FailedPreconditionError(t.path + ": a transaction is begun only once"));
  }
  std::shared_ptr<DB> db = t.owner.cast<PyDB&>().Handle();
  absl::StatusOr<WriteTxn> txn;
  {
    py::gil_scoped_release nogil;
    txn = db->BeginWrite();
  }
  if (!txn.ok()) ThrowStatus(txn.status());
  t.txn.emplace(std::move(*txn));
  t.db = std::move(db);
  t.state = PyTxn::State::kActive;
  t.thread = PyThread_get_thread_ident();
}

// Ends the transaction: the handle closes here when DB.close() was called meanwhile.
void FinishTxn(PyTxn& t) {
  t.state = PyTxn::State::kDone;
  t.txn.reset();
  std::shared_ptr<DB> db = std::move(t.db);
  py::gil_scoped_release nogil;
  db.reset();
}

void CommitTxn(PyTxn& t) {
  WriteTxn& txn = t.Active();
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = txn.Commit();
  }
  FinishTxn(t);
  if (!s.ok()) ThrowStatus(s);
}

void AbortTxn(PyTxn& t) {
  if (t.state != PyTxn::State::kActive) return;  // aborting twice, or what never began, is fine
  t.Active().Abort();
  FinishTxn(t);
}

py::object TxnGet(PyTxn& t, py::handle key, py::object dflt, bool raise) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  absl::StatusOr<std::string_view> v = t.Active().Get(k.view());
  if (absl::IsNotFound(v.status())) {
    if (raise) ThrowKeyError(key);
    return dflt;
  }
  if (!v.ok()) ThrowStatus(v.status());
  return ToBytes(*v);
}

void TxnPut(PyTxn& t, py::handle key, py::handle value) {
  BytesArg k, v;
  k.InitOrThrow(key, "key");
  v.InitOrThrow(value, "value");
  WriteTxn& txn = t.Active();
  absl::Status s;
  {
    py::gil_scoped_release nogil;  // may grow the file
    s = txn.Put(k.view(), v.view());
  }
  if (!s.ok()) ThrowStatus(s);
}

void TxnDelete(PyTxn& t, py::handle key, bool must_exist) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  WriteTxn& txn = t.Active();
  if (must_exist) {
    absl::StatusOr<std::string_view> cur = txn.Get(k.view());
    if (absl::IsNotFound(cur.status())) ThrowKeyError(key);
    if (!cur.ok()) ThrowStatus(cur.status());
  }
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = txn.Delete(k.view());
  }
  if (!s.ok()) ThrowStatus(s);
}

// ---- Cache ----

struct PyCache {
  std::shared_ptr<Cache> cache;  // null once closed
  std::string path;

  std::shared_ptr<Cache> Handle() const {
    if (cache == nullptr) {
      ThrowStatus(absl::FailedPreconditionError(path + ": the cache is closed"));
    }
    return cache;
  }
};

// None: never expires; otherwise seconds > 0, at least one millisecond.
Ttl ParseTtl(py::handle ttl) {
  if (ttl.is_none()) return Ttl{0};
  return Seconds("ttl", ttl, 1);
}

py::object OpenCache(py::handle path_obj, py::kwargs kwargs) {
  const std::string path = FsPath(path_obj);
  CacheOptions options;
  if (kwargs.contains("capacity")) {
    options.capacity = OptionUint("capacity", kwargs["capacity"]);
    PyDict_DelItemString(kwargs.ptr(), "capacity");
  }
  if (kwargs.contains("compute_timeout")) {
    options.compute_timeout = Seconds("option compute_timeout", kwargs["compute_timeout"], 1);
    PyDict_DelItemString(kwargs.ptr(), "compute_timeout");
  }
  options.db = ParseOptions("open_cache", kwargs);
  absl::StatusOr<std::unique_ptr<Cache>> cache;
  {
    py::gil_scoped_release nogil;
    cache = Cache::Open(path, std::move(options));
  }
  if (!cache.ok()) ThrowStatus(cache.status());
  auto out = std::make_unique<PyCache>();
  out->cache = std::shared_ptr<Cache>(std::move(*cache));
  out->path = path;
  return py::cast(std::move(out));
}

py::object CacheGet(PyCache& self, py::handle key, py::object dflt, bool raise) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  absl::StatusOr<std::string> v = self.Handle()->Get(k.view());  // never waits for a lock long
  if (absl::IsNotFound(v.status())) {
    if (raise) ThrowKeyError(key);
    return dflt;
  }
  if (!v.ok()) ThrowStatus(v.status());
  return ToBytes(*v);
}

void CachePut(PyCache& self, py::handle key, py::handle value, py::handle ttl) {
  BytesArg k, v;
  k.InitOrThrow(key, "key");
  v.InitOrThrow(value, "value");
  const Ttl t = ParseTtl(ttl);
  std::shared_ptr<Cache> cache = self.Handle();
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = cache->Put(k.view(), v.view(), t);
  }
  if (!s.ok()) ThrowStatus(s);
}

void CacheDelete(PyCache& self, py::handle key) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  std::shared_ptr<Cache> cache = self.Handle();
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = cache->Delete(k.view());
  }
  if (!s.ok()) ThrowStatus(s);
}

// fn runs with the GIL taken again, on the calling thread; the waits for other processes run
// without it. An exception in fn reaches this call's caller and nothing is stored (the lease is
// dropped, so a waiter computes instead).
py::bytes CacheGetOrCompute(PyCache& self, py::handle key, py::handle fn, py::handle ttl) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  if (!PyCallable_Check(fn.ptr())) {
    throw py::type_error("mapkv: get_or_compute(key, fn): fn is a callable returning bytes");
  }
  const Ttl t = ParseTtl(ttl);
  std::shared_ptr<Cache> cache = self.Handle();
  std::optional<py::error_already_set> raised;
  absl::StatusOr<std::string> v;
  {
    py::gil_scoped_release nogil;
    v = cache->GetOrCompute(k.view(), t, [&]() -> absl::StatusOr<std::string> {
      py::gil_scoped_acquire gil;
      try {
        py::object out = py::reinterpret_borrow<py::object>(fn)();
        BytesArg b;
        b.InitOrThrow(out, "value");
        return std::string(b.view());
      } catch (py::error_already_set& e) {
        raised.emplace(std::move(e));
      } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        raised.emplace();
      }
      return absl::AbortedError("the compute function raised");
    });
  }
  if (raised) throw std::move(*raised);
  if (!v.ok()) ThrowStatus(v.status());
  return ToBytes(*v);
}

int64_t CacheIncrement(PyCache& self, py::handle key, int64_t delta, py::handle ttl) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  const Ttl t = ParseTtl(ttl);
  std::shared_ptr<Cache> cache = self.Handle();
  absl::StatusOr<int64_t> n;
  {
    py::gil_scoped_release nogil;
    n = cache->Increment(k.view(), delta, t);
  }
  if (!n.ok()) ThrowStatus(n.status());
  return *n;
}

py::dict CacheStatsDict(PyCache& self) {
  std::shared_ptr<Cache> cache = self.Handle();
  CacheStats s;
  {
    py::gil_scoped_release nogil;
    s = cache->GetStats();
  }
  py::dict d;
  d["hits"] = s.hits;
  d["misses"] = s.misses;
  d["expirations"] = s.expirations;
  d["computes"] = s.computes;
  d["waits"] = s.waits;
  d["takeovers"] = s.takeovers;
  d["evictions"] = s.evictions;
  d["db"] = StatsDict(s.db);
  return d;
}

void CloseCache(PyCache& self) {
  std::shared_ptr<Cache> cache = std::move(self.cache);
  py::gil_scoped_release nogil;
  cache.reset();
}

// ---- Benchmark helpers (bench/python_bench.py) ----

// Runs DB::Get(key, &buffer) n times in C++ over `keys` in turn: the C++ cost of a Get for the
// Python one to be compared with. Returns how many were found.
uint64_t BenchGetLoop(PyDB& self, const std::vector<std::string>& keys, uint64_t n) {
  std::shared_ptr<DB> db = self.Handle();
  if (keys.empty()) throw py::value_error("mapkv: _bench_get_loop needs keys");
  std::string buf;
  uint64_t found = 0;
  size_t i = 0;
  for (uint64_t j = 0; j < n; ++j) {
    found += db->Get(keys[i], &buf).ok();
    if (++i == keys.size()) i = 0;
  }
  return found;
}

// db[key] with the GIL released around the Get: what the hot path would cost that way.
py::bytes GetReleasingGil(PyDB& self, py::handle key) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  std::shared_ptr<DB> db = self.Handle();  // as any call releasing the GIL must
  static thread_local std::string buf;
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = db->Get(k.view(), &buf);
  }
  if (absl::IsNotFound(s)) ThrowKeyError(key);
  if (!s.ok()) ThrowStatus(s);
  return ToBytes(buf);
}

// db[key] through pybind11's dispatch: what the CPython slot saves.
py::bytes GetThroughPybind11(PyDB& self, py::handle key) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  DB& db = *self.Handle();
  const absl::Status s = db.Get(k.view(), &self.buf);
  if (absl::IsNotFound(s)) ThrowKeyError(key);
  if (!s.ok()) ThrowStatus(s);
  return ToBytes(self.buf);
}

void DefineExceptions(py::module_& m) {
  py::exec(kExceptionSource, m.attr("__dict__"));
  const std::pair<absl::StatusCode, const char*> classes[] = {
      {absl::StatusCode::kCancelled, "CancelledError"},
      {absl::StatusCode::kUnknown, "UnknownError"},
      {absl::StatusCode::kInvalidArgument, "InvalidArgumentError"},
      {absl::StatusCode::kDeadlineExceeded, "DeadlineExceededError"},
      {absl::StatusCode::kNotFound, "NotFoundError"},
      {absl::StatusCode::kAlreadyExists, "AlreadyExistsError"},
      {absl::StatusCode::kPermissionDenied, "PermissionDeniedError"},
      {absl::StatusCode::kResourceExhausted, "ResourceExhaustedError"},
      {absl::StatusCode::kFailedPrecondition, "FailedPreconditionError"},
      {absl::StatusCode::kAborted, "AbortedError"},
      {absl::StatusCode::kOutOfRange, "OutOfRangeError"},
      {absl::StatusCode::kUnimplemented, "UnimplementedError"},
      {absl::StatusCode::kInternal, "InternalError"},
      {absl::StatusCode::kUnavailable, "UnavailableError"},
      {absl::StatusCode::kDataLoss, "DataLossError"},
      {absl::StatusCode::kUnauthenticated, "UnauthenticatedError"},
  };
  for (const auto& [code, name] : classes) {
    g_errors[static_cast<int>(code)] = py::object(m.attr(name)).release().ptr();
  }
  g_not_found = g_errors[static_cast<int>(absl::StatusCode::kNotFound)];
}

// Objects of the module's types are made by its functions only (they cast C++ objects, which does
// not go through tp_new): `mapkv.DB.__new__(mapkv.DB)` would make one without its C++ value.
PyObject* RefuseNew(PyTypeObject* type, PyObject*, PyObject*) {
  PyErr_Format(PyExc_TypeError,
               "%s objects are made by mapkv.open(), mapkv.open_cache() and DB.transaction()",
               type->tp_name);
  return nullptr;
}

void MadeByFunctionsOnly(py::handle type) {
  reinterpret_cast<PyTypeObject*>(type.ptr())->tp_new = RefuseNew;
  PyType_Modified(reinterpret_cast<PyTypeObject*>(type.ptr()));
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
}  // namespace python
}  // namespace mapkv

PYBIND11_MODULE(mapkv, m) {
  using namespace mapkv;          // NOLINT: the module's one function defines everything
  using namespace mapkv::python;  // NOLINT
  m.doc() = R"doc(mapkv: a persistent memory-mapped key-value store shared by processes.

    db = mapkv.open(path, **options)          # a DB: a mapping of bytes to bytes
    cache = mapkv.open_cache(path, **options) # a Cache shared by worker processes

Keys and values are bytes; any bytes-like object (bytearray, memoryview) is accepted in, str is
refused with a TypeError (encode it). Values come back as bytes. Failures raise mapkv.Error
subclasses named after absl::Status codes (NotFoundError is also a KeyError, InvalidArgumentError
a ValueError, DeadlineExceededError a TimeoutError, PermissionDeniedError a PermissionError,
AlreadyExistsError a FileExistsError, OutOfRangeError an OverflowError).

A handle opened before fork() cannot be used in the child (FailedPreconditionError): open the file
again there, for example in a multiprocessing pool's initializer.)doc";

  DefineExceptions(m);

  py::class_<PyDB> db(m, "DB", R"doc(A mapkv database, opened by mapkv.open().

A mapping of bytes to bytes: db[k], db[k] = v, del db[k], k in db, len(db), iteration over the
keys. keys(), values(), items() and iteration copy a consistent snapshot out of one read
transaction, then release its lock. Every write commits at once (or use transaction()). Usable
from many threads; calls that may wait for another process's lock release the GIL.)doc");
  db.def("__getitem__", &GetThroughPybind11, py::arg("key"),
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
      .def("__len__", &Len)
      .def("__iter__", [](PyDB& self) { return py::iter(Keys(self)); })
      .def("keys", &Keys, "A list of the keys at one moment (a snapshot).")
      .def("values", &Values, "A list of the values at one moment (a snapshot).")
      .def("items", &Items, "A list of (key, value) pairs at one moment (a snapshot).")
      .def(
          "transaction",
          [](py::object self) {
            auto t = std::make_unique<PyTxn>();
            t->path = self.cast<PyDB&>().path;
            t->owner = std::move(self);
            return t;
          },
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
      .def("verify", &Verify, R"doc(Checks the whole file. Returns None when all is well; raises
DataLossError otherwise, whose `problems` lists dicts of offset, kind and detail.)doc")
      .def("close", &Close, "Closes the handle; later calls raise FailedPreconditionError.")
      .def_property_readonly("path", [](const PyDB& self) { return self.path; })
      .def_property_readonly("closed", [](const PyDB& self) { return self.db == nullptr; })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyDB& self, py::args) { Close(self); })
      .def("__repr__", [](const PyDB& self) {
        return "<mapkv.DB '" + self.path + (self.db == nullptr ? "' (closed)>" : "'>");
      });
  InstallFastPaths(db);  // db[k], k in db, db.get

  MadeByFunctionsOnly(db);

  py::class_<PyTxn> txn(m, "Transaction", "A write transaction: see DB.transaction().");
  txn.def("__enter__",
          [](py::object self) {
            BeginTxn(self.cast<PyTxn&>());
            return self;
          })
      .def("__exit__",
           [](PyTxn& t, py::handle type, py::handle, py::handle) {
             if (type.is_none() && t.state == PyTxn::State::kActive) {
               CommitTxn(t);
             } else {
               AbortTxn(t);
             }
             return false;
           })
      .def("commit", &CommitTxn, "Commits now; the transaction is finished.")
      .def("abort", &AbortTxn, "Drops every write; the transaction is finished.")
      .def(
          "__getitem__", [](PyTxn& t, py::handle k) { return TxnGet(t, k, py::none(), true); },
          py::arg("key"))
      .def(
          "get", [](PyTxn& t, py::handle k, py::object dflt) { return TxnGet(t, k, dflt, false); },
          py::arg("key"), py::arg("default") = py::none())
      .def("__contains__",
           [](PyTxn& t, py::handle k) { return !TxnGet(t, k, py::none(), false).is_none(); })
      .def("__setitem__", &TxnPut)
      .def("put", &TxnPut, py::arg("key"), py::arg("value"))
      .def("__delitem__", [](PyTxn& t, py::handle k) { TxnDelete(t, k, true); })
      .def(
          "delete", [](PyTxn& t, py::handle k) { TxnDelete(t, k, false); }, py::arg("key"));

  MadeByFunctionsOnly(txn);

  py::class_<PyCache> cache(m, "Cache", R"doc(A mapkv cache shared by processes, opened by
mapkv.open_cache(). Values may expire (ttl in seconds; None: never), get_or_compute() runs its
function once across every process per missing key, increment() is atomic across processes.)doc");
  cache
      .def(
          "get", [](PyCache& c, py::handle k, py::object d) { return CacheGet(c, k, d, false); },
          py::arg("key"), py::arg("default") = py::none(),
          "The value of key, or default when absent, expired or being computed.")
      .def(
          "__getitem__", [](PyCache& c, py::handle k) { return CacheGet(c, k, py::none(), true); },
          py::arg("key"))
      .def("__contains__",
           [](PyCache& c, py::handle k) { return !CacheGet(c, k, py::none(), false).is_none(); })
      .def("put", &CachePut, py::arg("key"), py::arg("value"), py::arg("ttl") = py::none(),
           "Stores value at key, to expire after ttl seconds (None: never).")
      .def("__setitem__",
           [](PyCache& c, py::handle k, py::handle v) { CachePut(c, k, v, py::none()); })
      .def("delete", &CacheDelete, py::arg("key"), "Removes key; no error when it is absent.")
      .def("get_or_compute", &CacheGetOrCompute, py::arg("key"), py::arg("fn"),
           py::arg("ttl") = py::none(),
           R"doc(The value of key; when there is none, exactly one caller across every process
runs fn() (which returns bytes) and stores its value for ttl seconds, while the others wait for it
(up to compute_timeout, then DeadlineExceededError). An exception in fn reaches its caller and
nothing is stored; a waiter computes instead.)doc")
      .def("increment", &CacheIncrement, py::arg("key"), py::arg("delta") = 1,
           py::arg("ttl") = py::none(),
           "Adds delta to the decimal counter at key (atomically across processes); returns the "
           "new value. A new counter starts at 0 and expires after ttl seconds (None: never).")
      .def("stats", &CacheStatsDict,
           "Counts summed over every process (hits, misses, ...) and the file's stats as 'db'.")
      .def(
          "checkpoint",
          [](PyCache& c) {
            std::shared_ptr<Cache> cache = c.Handle();
            absl::Status s;
            {
              py::gil_scoped_release nogil;
              s = cache->Checkpoint();
            }
            if (!s.ok()) ThrowStatus(s);
          },
          "Flushes every committed byte to disk.")
      .def("close", &CloseCache, "Closes the handle; later calls raise FailedPreconditionError.")
      .def_property_readonly("path", [](const PyCache& c) { return c.path; })
      .def_property_readonly("closed", [](const PyCache& c) { return c.cache == nullptr; })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyCache& c, py::args) { CloseCache(c); })
      .def("__repr__", [](const PyCache& c) {
        return "<mapkv.Cache '" + c.path + (c.cache == nullptr ? "' (closed)>" : "'>");
      });
  MadeByFunctionsOnly(cache);

  m.def("open", &OpenDB, py::arg("path"),
        R"doc(open(path, **options) -> DB

Opens or creates the database at path (str, bytes or os.PathLike). Options, as mapkv::Options:
create_if_missing=True, error_if_exists=False, read_only=False, exclusive=False, file_mode=0o600,
durability='none' ('none', 'periodic' or 'sync'), huge_pages=True, max_file_size=64 GiB,
initial_file_size=1 MiB, initial_index_slots=1024, verify_checksums=True,
checkpoint_interval=1.0 (seconds), checkpoint_bytes=64 MiB, lock_timeout=10.0 (seconds),
info_log=None (a callable taking one str line; None: stderr). An unknown keyword is a TypeError.)doc");
  m.def("open_cache", &OpenCache, py::arg("path"),
        R"doc(open_cache(path, capacity=64 MiB, compute_timeout=30.0, **options) -> Cache

Opens or creates the cache at path. capacity in bytes (0: none), compute_timeout in seconds
(how long get_or_compute waits for another's computation), and every option of open().)doc");
  m.def("_bench_get_loop", &BenchGetLoop, py::arg("db"), py::arg("keys"), py::arg("n"),
        "Benchmark helper: n C++ DB::Get calls over keys in turn; returns how many were found.");
  m.def("_get_releasing_gil", &GetReleasingGil, py::arg("db"), py::arg("key"),
        "Benchmark helper: db[key] with the GIL released around the Get.");
  m.def("_get_through_pybind11", &GetThroughPybind11, py::arg("db"), py::arg("key"),
        "Benchmark helper: db[key] through pybind11's generic dispatch.");
  m.attr("__version__") = MAPKV_VERSION;
  m.attr("MAX_KEY_SIZE") = kMaxKeySize;
  m.attr("MAX_VALUE_SIZE") = kMaxValueSize;
}
