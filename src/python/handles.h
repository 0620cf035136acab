// The C++ values behind the module's Python types: a database handle (mapkv.DB), its read and
// write transactions (mapkv.ReadTransaction, mapkv.Transaction) and the lazy iterator over a read
// transaction (mapkv.Iterator), and a cache handle (mapkv.Cache).
#ifndef MAPKV_PYTHON_HANDLES_H_
#define MAPKV_PYTHON_HANDLES_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "src/python/common.h"
#include "src/python/scanner.h"

namespace mapkv {
namespace python {

struct PyDB {
  std::shared_ptr<DB> db;  // null once closed
  std::string path;
  std::string buf;  // the hot Gets' buffer (the GIL guards it)
  // Whether a ReadTxn of this file holds the shared lock (format version 1; read at open). From
  // version 4 a ReadTxn is a snapshot that holds no lock, and commits go through while it lives.
  bool read_txn_holds_lock = false;
  // With read_txn_holds_lock alone: the threads that hold a read transaction of this handle (an
  // open ReadTransaction or a live iterator), one entry per transaction; the GIL guards it. A
  // commit from one of them would wait for itself until lock_timeout: writes there fail at once
  // instead (CheckWritable).
  std::vector<unsigned long> reading_threads;

  // The handle for a call that releases the GIL (a copy keeps it alive through close()).
  std::shared_ptr<DB> Handle() const;
  // Handle(), for a call that commits: FailedPreconditionError when this thread holds a read
  // transaction of this handle and that transaction holds the lock (read_txn_holds_lock).
  std::shared_ptr<DB> WritableHandle() const;
  void CheckWritable() const;
};

// A write transaction (mapkv.Transaction), begun by `with` or DB.begin(write=True).
struct PyTxn {
  py::object owner;        // the mapkv.DB it was made by
  std::shared_ptr<DB> db;  // from begin to end: keeps the handle open while it lives
  std::string path;
  std::optional<WriteTxn> txn;
  enum class State { kNew, kActive, kDone } state = State::kNew;
  unsigned long thread = 0;  // the thread that began it: a WriteTxn belongs to one thread

  WriteTxn& Active();
};

struct PyIter;

// A read transaction (mapkv.ReadTransaction): a snapshot, the database as of its begin, while
// commits of every process go on (in a format version 1 file it holds the shared lock from begin
// to end instead, and commits wait for it). Values come back as bytes, or with `buffers` as
// read-only memoryviews of the mapping itself, each released when the transaction ends (a use
// after that raises ValueError rather than reading freed memory).
struct PyReadTxn {
  py::object owner;  // the mapkv.DB it was made by
  PyDB* pydb = nullptr;
  std::shared_ptr<DB> db;  // from begin to end
  std::string path;
  bool buffers = false;
  std::optional<ReadTxn> txn;
  enum class State { kNew, kActive, kDone } state = State::kNew;
  unsigned long thread = 0;
  std::vector<py::object> views;  // the memoryviews handed out that someone else still holds
  size_t views_kept = 0;          // views.size() after the last pruning
  std::vector<PyIter*> iters;     // the iterators over it, stopped when it ends

  ~PyReadTxn() { End(); }  // dropped unended: ends as abort() would
  const ReadTxn& Active();
  void Begin();
  void End();
  // A value (or key) as bytes, or as a memoryview of the mapping with `buffers`.
  py::object Value(std::string_view v);
};

// A lazy iteration over a read transaction (mapkv.Iterator): keys, values or (key, value) pairs,
// fetched a batch at a time by a Scanner. `own_txn`: made by iter(db) and the like, whose
// transaction it ends when it is exhausted or dropped.
struct PyIter {
  enum class What { kKeys, kValues, kItems } what = What::kKeys;
  py::object txn_obj;  // the mapkv.ReadTransaction
  PyReadTxn* txn = nullptr;
  bool own_txn = false;
  std::unique_ptr<Scanner> scanner;
  Scanner::Batch batch;
  size_t next = 0;
  bool done = false;
  long pid = 0;  // the process whose thread scans: a child of fork() has none to stop

  ~PyIter();
  // Ends the iteration (and an own transaction); next() raises StopIteration after it.
  void Finish();
  // Stops the scan because the transaction ends; next() raises FailedPreconditionError after it.
  void Stop();
};

// A cache handle (mapkv.Cache).
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

// Makes an iterator over `txn_obj` (a begun mapkv.ReadTransaction).
std::unique_ptr<PyIter> MakeIter(py::object txn_obj, PyIter::What what, bool own_txn);
// A begun read transaction of `db_obj` (a mapkv.DB).
std::unique_ptr<PyReadTxn> BeginRead(py::object db_obj, bool buffers);

}  // namespace python
}  // namespace mapkv

#endif  // MAPKV_PYTHON_HANDLES_H_
