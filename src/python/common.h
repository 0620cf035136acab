// What the files of the Python module share: the exceptions (errors.cc), the conversions of
// arguments (convert.cc), and the functions that define each type on the module.
//
// The GIL: every call that may wait for the cross-process lock (open, writes, commits,
// checkpoints, verify, len, stats, close, get_or_compute, a read transaction's begin) runs with
// the GIL released, so other Python threads run while it waits. Gets keep it: DB::Get reads
// without the lock (a seqlock), waiting only while a commit publishes; releasing and taking the
// GIL again would cost more than the Get itself (bench/python_bench.py).
//
// Lifetimes: a handle's C++ object is a shared_ptr that each call releasing the GIL copies first,
// and that each open transaction holds: close() while another thread waits in a call, or while a
// transaction is open, drops this object's reference; the file closes when the last one ends.
#ifndef MAPKV_PYTHON_COMMON_H_
#define MAPKV_PYTHON_COMMON_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "mapkv/cache.h"
#include "mapkv/options.h"
#include "mapkv/stats.h"

namespace mapkv {
namespace python {

namespace py = pybind11;

// ---- errors.cc ----

// Defines mapkv.Error and its subclasses on `m` (one per absl::StatusCode, and the OS's
// FileNotFoundError and IsADirectoryError for a path that names no file or a directory).
void DefineExceptions(py::module_& m);
// The class raised for `code`.
PyObject* ErrorClass(absl::StatusCode code);
// Sets the Python error for a failed status; returns nullptr for the CPython slots to return.
PyObject* SetStatusError(const absl::Status& s);
[[noreturn]] void ThrowStatus(const absl::Status& s);
// A failed open of `path`: FileNotFoundError where the path names nothing (NotFound),
// IsADirectoryError where it names a directory, else as ThrowStatus.
[[noreturn]] void ThrowOpenError(const absl::Status& s, const std::string& path);
// A missing key: NotFoundError(key), as dict raises KeyError(key).
PyObject* SetKeyError(PyObject* key);
[[noreturn]] void ThrowKeyError(py::handle key);
// Warns with mapkv.OptionIgnoredWarning (a UserWarning).
void WarnOptionIgnored(const std::string& message);

// ---- convert.cc ----

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
  bool Init(PyObject* obj, const char* what);
  void InitOrThrow(py::handle obj, const char* what) {
    if (!Init(obj.ptr(), what)) throw py::error_already_set();
  }

  std::string_view view() const { return data_; }

 private:
  std::string_view data_;
  Py_buffer view_{};
  bool has_view_ = false;
};

inline py::bytes ToBytes(std::string_view s) { return py::bytes(s.data(), s.size()); }

// A path argument (str, bytes or os.PathLike) as the OS's bytes.
std::string FsPath(py::handle path);
uint64_t OptionUint(const std::string& name, py::handle v);
// Seconds (int, float or datetime.timedelta) as milliseconds, rounded to the nearest; `min_ms`
// is the least allowed above zero, and zero itself only where `zero_ok`.
std::chrono::milliseconds Seconds(const std::string& name, py::handle v, int64_t min_ms,
                                  bool zero_ok);
// A ttl: None or 0 never expires (as Ttl{0} in C++); otherwise seconds or a timedelta > 0, at
// least one millisecond.
Ttl ParseTtl(py::handle ttl);

// The keyword options of open() and open_cache() (Options fields); `function` names the caller in
// a TypeError about an unknown keyword. Cache-only keywords are taken out first by the caller.
Options ParseOptions(const char* function, const py::kwargs& kwargs);
py::dict StatsDict(const Stats& s);
// One handle's open snapshots (DB.snapshots()), keyed by the field names, as StatsDict: times as
// the Stats' last_checkpoint_unix_ms, integer milliseconds since the epoch.
py::dict SnapshotDict(const SnapshotInfo& s);

// ---- the types (db.cc, read_txn.cc, write_txn.cc, cache.cc) ----

// Each defines its classes' bodies on classes already declared, so that every signature names
// the Python types (mapkv.ReadTransaction, not the C++ ones).
void DefineDB(py::module_& m);
void DefineReadTxn(py::module_& m);
void DefineWriteTxn(py::module_& m);
void DefineCache(py::module_& m);

// Objects of the module's types are made by its functions only (they cast C++ objects, which does
// not go through tp_new): `mapkv.DB.__new__(mapkv.DB)` would make one without its C++ value.
void MadeByFunctionsOnly(py::handle type);

// The Python object that wraps `value` (pybind11 finds the registered instance), for methods that
// take `T& self`, whose signatures then name the type (`self: mapkv.DB`, not `self: object`).
template <class T>
py::object SelfOf(T& value) {
  return py::cast(&value, py::return_value_policy::reference);
}

// The pybind11 object's C++ value, for the CPython slots; nullptr with TypeError when it has none.
template <class T>
T* Unwrap(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  void* v = inst->get_value_and_holder().value_ptr();
  if (v == nullptr) PyErr_SetString(PyExc_TypeError, "mapkv: an uninitialised handle");
  return static_cast<T*>(v);
}

// txn.get(key, default) and txn[key] (raise: KeyError when absent) of a transaction whose
// Get(std::string_view) gives an absl::StatusOr<std::string_view>; `wrap` makes the value's object.
template <class Txn, class Wrap>
py::object GetFromTxn(Txn& txn, py::handle key, py::object dflt, bool raise, Wrap&& wrap) {
  BytesArg k;
  k.InitOrThrow(key, "key");
  absl::StatusOr<std::string_view> v = txn.Get(k.view());
  if (absl::IsNotFound(v.status())) {
    if (raise) ThrowKeyError(key);
    return dflt;
  }
  if (!v.ok()) ThrowStatus(v.status());
  return wrap(*v);
}

}  // namespace python
}  // namespace mapkv

#endif  // MAPKV_PYTHON_COMMON_H_
