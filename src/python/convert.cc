// Arguments in (bytes-like keys and values, paths, options, durations) and statistics out.
#include <cmath>
#include <string>

#include "src/python/common.h"
#include "src/stats_fields.h"

namespace mapkv {
namespace python {

bool BytesArg::Init(PyObject* obj, const char* what) {
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

namespace {

bool OptionBool(const std::string& name, py::handle v) {
  if (!PyBool_Check(v.ptr())) {
    throw py::type_error("mapkv: option " + name + " is a bool, not " +
                         std::string(Py_TYPE(v.ptr())->tp_name));
  }
  return v.ptr() == Py_True;
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

bool IsTimedelta(py::handle v) {
  static PyObject* timedelta = [] {
    return py::object(py::module_::import("datetime").attr("timedelta")).release().ptr();
  }();
  return PyObject_IsInstance(v.ptr(), timedelta) == 1;
}

}  // namespace

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

std::chrono::milliseconds Seconds(const std::string& name, py::handle v, int64_t min_ms,
                                  bool zero_ok) {
  double s = 0;
  if (IsTimedelta(v)) {
    s = py::float_(v.attr("total_seconds")());
  } else if (PyBool_Check(v.ptr()) || !(PyLong_Check(v.ptr()) || PyFloat_Check(v.ptr()))) {
    throw py::type_error("mapkv: " + name +
                         " is a number of seconds or a datetime.timedelta, not " +
                         std::string(Py_TYPE(v.ptr())->tp_name));
  } else {
    s = PyFloat_AsDouble(v.ptr());
    if (PyErr_Occurred()) throw py::error_already_set();
  }
  if (!std::isfinite(s) || s < 0 || s > 1e12) {
    throw py::value_error("mapkv: " + name + " must be a finite number of seconds >= 0");
  }
  if (s == 0 && zero_ok) return std::chrono::milliseconds(0);
  int64_t ms = std::llround(s * 1000);
  if (ms < min_ms) {
    if (s <= 0) throw py::value_error("mapkv: " + name + " must be > 0 seconds");
    ms = min_ms;
  }
  return std::chrono::milliseconds(ms);
}

Ttl ParseTtl(py::handle ttl) {
  if (ttl.is_none()) return Ttl{0};
  return Seconds("ttl", ttl, 1, /*zero_ok=*/true);
}

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
    } else if (name == "max_snapshot_bytes") {
      o.max_snapshot_bytes = OptionUint(name, v);
    } else if (name == "compact_min_garbage") {
      o.compact_min_garbage = OptionUint(name, v);
    } else if (name == "create_format_version") {
      const uint64_t version = OptionUint(name, v);
      if (version > UINT32_MAX)
        throw py::value_error("mapkv: option create_format_version is 0, 4 or 5");
      o.create_format_version = static_cast<uint32_t>(version);
    } else if (name == "compact_ratio") {
      if (PyBool_Check(v.ptr()) || !(PyLong_Check(v.ptr()) || PyFloat_Check(v.ptr()))) {
        throw py::type_error("mapkv: option compact_ratio is a number");
      }
      o.compact_ratio = PyFloat_AsDouble(v.ptr());
      if (!(o.compact_ratio >= 0)) throw py::value_error("mapkv: option compact_ratio is >= 0");
    } else if (name == "checkpoint_interval") {
      o.checkpoint_interval = Seconds("option " + name, v, 0, true);
    } else if (name == "lock_timeout") {
      o.lock_timeout = Seconds("option " + name, v, 0, true);
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

py::dict StatsDict(const Stats& s) {
  py::dict d;
#define MAPKV_PY_FIELD(field) d[#field] = s.field;
  MAPKV_STATS_FIELDS(MAPKV_PY_FIELD)
#undef MAPKV_PY_FIELD
  return d;
}

py::dict SnapshotDict(const SnapshotInfo& s) {
  py::dict d;
  d["pid"] = s.pid;
  d["snapshots"] = s.snapshots;
  d["since_unix_ms"] = s.since_unix_ms;
  d["tail"] = s.tail;
  d["pinned_bytes"] = s.pinned_bytes;
  return d;
}

}  // namespace python
}  // namespace mapkv
