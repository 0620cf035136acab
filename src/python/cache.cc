// mapkv.Cache: mapkv::Cache, shared by worker processes: expiry, compute-once, counters.
#include "mapkv/cache.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "src/python/common.h"
#include "src/python/handles.h"
#include "src/stats_fields.h"

namespace mapkv {
namespace python {

namespace {

std::unique_ptr<PyCache> OpenCache(py::handle path_obj, py::kwargs kwargs) {
  const std::string path = FsPath(path_obj);
  CacheOptions options;
  const bool capacity_given = kwargs.contains("capacity");
  const bool max_given = kwargs.contains("max_file_size");
  if (capacity_given) {
    options.capacity = OptionUint("capacity", kwargs["capacity"]);
    PyDict_DelItemString(kwargs.ptr(), "capacity");
  }
  if (kwargs.contains("compute_timeout")) {
    options.compute_timeout =
        Seconds("option compute_timeout", kwargs["compute_timeout"], 1, false);
    PyDict_DelItemString(kwargs.ptr(), "compute_timeout");
  }
  options.db = ParseOptions("open_cache", kwargs);
  const uint64_t capacity = options.capacity;
  const uint64_t max_file_size = options.db.max_file_size;
  absl::StatusOr<std::unique_ptr<Cache>> cache;
  {
    py::gil_scoped_release nogil;
    cache = Cache::Open(path, std::move(options));
  }
  if (!cache.ok()) ThrowOpenError(cache.status(), path);
  auto out = std::make_unique<PyCache>();
  out->cache = std::shared_ptr<Cache>(std::move(*cache));
  out->path = path;
  // An existing cache keeps the capacity it was created with (and its file's max_file_size):
  // a caller that asked for another is told.
  if (capacity_given || max_given) {
    const Stats s = out->cache->GetStats().db;
    if (capacity_given && s.cache_capacity != capacity) {
      WarnOptionIgnored(path + ": capacity " + std::to_string(capacity) +
                        " is not this cache's: it was created with " +
                        std::to_string(s.cache_capacity) + " and keeps it");
    }
    if (max_given && s.max_file_size != max_file_size) {
      WarnOptionIgnored(path + ": max_file_size " + std::to_string(max_file_size) +
                        " is not this file's: it keeps " + std::to_string(s.max_file_size));
    }
  }
  return out;
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
#define MAPKV_PY_FIELD(field) d[#field] = s.field;
  MAPKV_CACHE_STATS_FIELDS(MAPKV_PY_FIELD)
#undef MAPKV_PY_FIELD
  d["db"] = StatsDict(s.db);
  return d;
}

void CloseCache(PyCache& self) {
  std::shared_ptr<Cache> cache = std::move(self.cache);
  py::gil_scoped_release nogil;
  cache.reset();
}

}  // namespace

void DefineCache(py::module_& m) {
  auto cache = py::reinterpret_borrow<py::class_<PyCache>>(m.attr("Cache"));
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
           "Stores value at key, to expire after ttl (seconds or a timedelta; None or 0: never).")
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
           "new value. A new counter starts at 0 and expires after ttl (None or 0: never).")
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
      .def(
          "__enter__", [](PyCache& self) -> PyCache& { return self; },
          py::return_value_policy::reference)
      .def("__exit__", [](PyCache& c, py::args) { CloseCache(c); })
      .def("__repr__", [](const PyCache& c) {
        return "<mapkv.Cache '" + c.path + (c.cache == nullptr ? "' (closed)>" : "'>");
      });
  MadeByFunctionsOnly(cache);

  m.def("open_cache", &OpenCache, py::arg("path"),
        R"doc(open_cache(path, capacity=64 MiB, compute_timeout=30.0, **options) -> Cache

Opens or creates the cache at path. capacity in bytes (0: none), compute_timeout in seconds
(how long get_or_compute waits for another's computation), and every option of open(). An
existing cache keeps the capacity it was created with: another one given here warns with
OptionIgnoredWarning, as does a max_file_size the file does not take.)doc");
}

}  // namespace python
}  // namespace mapkv
