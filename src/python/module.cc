// The extension module mapkv._mapkv, which the package mapkv (mapkv/__init__.py) re-exports:
// mapkv::DB as a mapping of bytes to bytes with read and write transactions, mapkv::Cache, and
// absl::Status codes as exceptions. Each type is defined in its own file (db.cc, read_txn.cc,
// write_txn.cc, cache.cc; errors.cc, convert.cc).
#include "src/python/common.h"
#include "src/python/handles.h"

namespace mapkv {
namespace python {

namespace {

PyObject* RefuseNew(PyTypeObject* type, PyObject*, PyObject*) {
  PyErr_Format(PyExc_TypeError,
               "%s objects are made by mapkv.open(), mapkv.open_cache(), DB.begin() and "
               "DB.transaction()",
               type->tp_name);
  return nullptr;
}

}  // namespace

void MadeByFunctionsOnly(py::handle type) {
  reinterpret_cast<PyTypeObject*>(type.ptr())->tp_new = RefuseNew;
  PyType_Modified(reinterpret_cast<PyTypeObject*>(type.ptr()));
}

}  // namespace python
}  // namespace mapkv

PYBIND11_MODULE(_mapkv, m) {
  using namespace mapkv;          // NOLINT: the module's one function defines everything
  using namespace mapkv::python;  // NOLINT
  // The types and exceptions are the package's (mapkv.DB, not mapkv._mapkv.DB): help(), repr()
  // and pickle name them as users import them. pybind11 and the exceptions' source take the
  // module name from __name__ while they are defined.
  const py::object own_name = m.attr("__name__");
  m.attr("__name__") = "mapkv";
  m.doc() = R"doc(mapkv: a persistent memory-mapped key-value store shared by processes.

    db = mapkv.open(path, **options)          # a DB: a mapping of bytes to bytes
    cache = mapkv.open_cache(path, **options) # a Cache shared by worker processes

Keys and values are bytes; any bytes-like object (bytearray, memoryview) is accepted in, str is
refused with a TypeError (encode it). Values come back as bytes (or memoryviews from a read
transaction begun with buffers=True). Failures raise mapkv.Error subclasses named after
absl::Status codes (NotFoundError is also a KeyError, InvalidArgumentError a ValueError,
DeadlineExceededError a TimeoutError, PermissionDeniedError a PermissionError,
AlreadyExistsError a FileExistsError, OutOfRangeError an OverflowError); a path that names no
file is mapkv.FileNotFoundError, a directory mapkv.IsADirectoryError (OSErrors too).

A handle opened before fork() cannot be used in the child (FailedPreconditionError): open the file
again there, for example in a multiprocessing pool's initializer.)doc";

  DefineExceptions(m);

  // Every class first, so that each signature names the Python type of what it takes or returns.
  py::class_<PyDB>(m, "DB", R"doc(A mapkv database, opened by mapkv.open().

A MutableMapping of bytes to bytes: db[k], db[k] = v, del db[k], k in db, len(db), get, pop,
setdefault, update, clear, and keys(), values(), items() views whose iteration is lazy, through
a read transaction held while it runs: a snapshot, so the database may change while it is
iterated and every key of the snapshot comes once. Every write commits at once (or use
transaction() or begin(write=True)); begin() is a read transaction, as py-lmdb's; snapshots()
lists the open ones. Usable from many threads; calls that may wait for another process's lock
release the GIL.)doc");
  py::class_<PyReadTxn>(m, "ReadTransaction", R"doc(A read transaction: see DB.begin().

A snapshot: the database as of its begin, until it ends (`with`, abort() or commit()): txn[k],
txn.get(k), k in txn, len(txn), and lazy iteration (iter(txn), keys(), values(), items()).
It holds no lock: commits of every process, this thread's included, go on, and it keeps seeing
its one state. In a format version 1 file it holds the shared lock instead: commits of every
process wait until it ends, and writes through the same handle from this thread fail meanwhile.
With buffers=True values are read-only memoryviews of the file, released when it ends (a use
after that raises ValueError); keys are always bytes.)doc");
  py::class_<PyIter>(m, "Iterator",
                     "A lazy iterator over a read transaction: keys, values or (key, value).");
  py::class_<PyTxn>(m, "Transaction", "A write transaction: see DB.transaction().");
  py::class_<PyCache>(m, "Cache", R"doc(A mapkv cache shared by processes, opened by
mapkv.open_cache(). Values may expire (ttl in seconds or a datetime.timedelta; None or 0: never),
get_or_compute() runs its function once across every process per missing key, increment() is
atomic across processes.)doc");

  DefineDB(m);
  DefineReadTxn(m);
  DefineWriteTxn(m);
  DefineCache(m);

  m.attr("__version__") = MAPKV_VERSION;
  m.attr("MAX_KEY_SIZE") = kMaxKeySize;
  m.attr("MAX_VALUE_SIZE") = kMaxValueSize;
  m.attr("__name__") = own_name;
}
