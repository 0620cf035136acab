// mapkv.ReadTransaction (DB.begin()) and mapkv.Iterator: reads as in py-lmdb, one consistent
// view (a snapshot, or in a format version 1 file a view under the shared lock), iterated
// lazily, with values as bytes or as memoryviews of the mapping.
#include <algorithm>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "src/python/common.h"
#include "src/python/handles.h"

namespace mapkv {
namespace python {

const ReadTxn& PyReadTxn::Active() {
  if (state != State::kActive) {
    ThrowStatus(absl::FailedPreconditionError(path + ": the read transaction is finished"));
  }
  return *txn;
}

void PyReadTxn::Begin() {
  std::shared_ptr<DB> h = pydb->Handle();
  absl::StatusOr<ReadTxn> t;
  {
    py::gil_scoped_release nogil;
    t = h->BeginRead();
  }
  if (!t.ok()) ThrowStatus(t.status());
  txn.emplace(std::move(*t));
  db = std::move(h);
  state = State::kActive;
  thread = PyThread_get_thread_ident();
  if (pydb->read_txn_holds_lock) pydb->reading_threads.push_back(thread);
}

// Ends the transaction: releases every memoryview handed out (one still exported elsewhere, by
// a buffer made from it, cannot be), then the snapshot (or the shared lock). Iterators over it
// stop first.
void PyReadTxn::End() {
  if (state != State::kActive) return;
  state = State::kDone;
  for (PyIter* it : iters) it->Stop();
  iters.clear();
  for (py::object& v : views) {
    PyObject* r = PyObject_CallMethod(v.ptr(), "release", nullptr);
    if (r == nullptr) PyErr_Clear();  // BufferError: exported, left as it is
    Py_XDECREF(r);
  }
  views.clear();
  auto it = std::find(pydb->reading_threads.begin(), pydb->reading_threads.end(), thread);
  if (it != pydb->reading_threads.end()) pydb->reading_threads.erase(it);
  txn.reset();
  std::shared_ptr<DB> h = std::move(db);
  py::gil_scoped_release nogil;
  h.reset();  // the handle closes here when DB.close() was called meanwhile
}

py::object PyReadTxn::Value(std::string_view v) {
  if (!buffers) return ToBytes(v);
  PyObject* mv = PyMemoryView_FromMemory(const_cast<char*>(v.data()),
                                         static_cast<Py_ssize_t>(v.size()), PyBUF_READ);
  if (mv == nullptr) throw py::error_already_set();
  py::object out = py::reinterpret_steal<py::object>(mv);
  // Keep only the views someone else still holds: the list stays as long as those are.
  if (views.size() >= 2 * views_kept + 64) {
    views.erase(std::remove_if(views.begin(), views.end(),
                               [](const py::object& o) { return Py_REFCNT(o.ptr()) == 1; }),
                views.end());
    views_kept = views.size();
  }
  views.push_back(out);
  return out;
}

std::unique_ptr<PyReadTxn> BeginRead(py::object db_obj, bool buffers) {
  auto t = std::make_unique<PyReadTxn>();
  t->pydb = &db_obj.cast<PyDB&>();
  t->path = t->pydb->path;
  t->buffers = buffers;
  t->owner = std::move(db_obj);
  t->Begin();
  return t;
}

// ---- Iterator ----

PyIter::~PyIter() { Finish(); }

namespace {

long Pid() { return py::int_(py::module_::import("os").attr("getpid")()); }

}  // namespace

void PyIter::Stop() {
  if (scanner != nullptr && Pid() != pid) {
    // A child of fork(): the scanning thread is the parent's, and is not here to be joined.
    (void)scanner.release();  // NOLINT: its memory is the parent's copy; leaked in the child
  }
  if (scanner != nullptr) {
    py::gil_scoped_release nogil;
    scanner.reset();
  }
  batch.clear();
  next = 0;
}

void PyIter::Finish() {
  if (done) return;
  done = true;
  Stop();
  if (txn == nullptr) return;
  auto it = std::find(txn->iters.begin(), txn->iters.end(), this);
  if (it != txn->iters.end()) txn->iters.erase(it);
  if (own_txn) txn->End();
}

std::unique_ptr<PyIter> MakeIter(py::object txn_obj, PyIter::What what, bool own_txn) {
  PyReadTxn& t = txn_obj.cast<PyReadTxn&>();
  const ReadTxn& txn = t.Active();
  auto it = std::make_unique<PyIter>();
  it->what = what;
  it->txn = &t;
  it->own_txn = own_txn;
  it->txn_obj = std::move(txn_obj);
  it->scanner = std::make_unique<Scanner>(txn);
  it->pid = Pid();
  t.iters.push_back(it.get());
  return it;
}

namespace {

py::object Next(PyIter& it) {
  if (it.next == it.batch.size()) {
    if (it.done) throw py::stop_iteration();
    if (it.scanner == nullptr) {  // its transaction ended
      it.Finish();
      ThrowStatus(
          absl::FailedPreconditionError(it.txn->path + ": the read transaction is finished"));
    }
    it.batch.clear();
    it.next = 0;
    bool end = false;
    absl::Status s;
    if (!it.scanner->TryNext(&it.batch, &end, &s)) {
      py::gil_scoped_release nogil;
      end = !it.scanner->Next(&it.batch, &s);
    }
    if (end) {
      it.Finish();
      if (!s.ok()) ThrowStatus(s);
      throw py::stop_iteration();
    }
  }
  const auto& [k, v] = it.batch[it.next++];
  switch (it.what) {
    case PyIter::What::kKeys:
      return ToBytes(k);
    case PyIter::What::kValues:
      return it.txn->Value(v);
    case PyIter::What::kItems:
      return py::make_tuple(ToBytes(k), it.txn->Value(v));
  }
  return py::none();
}

py::object TxnGet(PyReadTxn& t, py::handle key, py::object dflt, bool raise) {
  return GetFromTxn(t.Active(), key, std::move(dflt), raise,
                    [&](std::string_view v) { return t.Value(v); });
}

// next(it) as the type's tp_iternext slot: pybind11's dispatch of __next__ would cost more than
// the rest of a step. NULL without an exception set ends the iteration.
PyObject* IterNextSlot(PyObject* self) {
  PyIter* it = Unwrap<PyIter>(self);
  if (it == nullptr) return nullptr;
  try {
    return Next(*it).release().ptr();
  } catch (py::stop_iteration&) {
    return nullptr;
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

// Ends the transaction with its iterators: they raise FailedPreconditionError afterwards.
void EndTxn(PyReadTxn& t) { t.End(); }

}  // namespace

void DefineReadTxn(py::module_& m) {
  auto txn = py::reinterpret_borrow<py::class_<PyReadTxn>>(m.attr("ReadTransaction"));
  txn.def(
         "__enter__", [](PyReadTxn& self) -> PyReadTxn& { return self; },
         py::return_value_policy::reference)
      .def("__exit__",
           [](PyReadTxn& t, py::handle, py::handle, py::handle) {
             EndTxn(t);
             return false;
           })
      .def("abort", &EndTxn,
           "Ends the transaction (releases its snapshot, or in a format version 1 file the "
           "shared lock).")
      .def("commit", &EndTxn, "Ends the transaction, as abort(): a read has nothing to commit.")
      .def(
          "get",
          [](PyReadTxn& t, py::handle k, py::object dflt) { return TxnGet(t, k, dflt, false); },
          py::arg("key"), py::arg("default") = py::none(),
          "get(key, default=None) -> bytes | memoryview: the value of key, or default.")
      .def(
          "__getitem__", [](PyReadTxn& t, py::handle k) { return TxnGet(t, k, py::none(), true); },
          py::arg("key"))
      .def(
          "__contains__",
          [](PyReadTxn& t, py::handle k) {
            BytesArg b;
            b.InitOrThrow(k, "key");
            absl::StatusOr<std::string_view> v = t.Active().Get(b.view());
            if (absl::IsNotFound(v.status())) return false;
            if (!v.ok()) ThrowStatus(v.status());
            return true;
          },
          py::arg("key"))
      .def("__len__", [](PyReadTxn& t) { return t.Active().Count(); })
      .def(
          "__iter__",
          [](PyReadTxn& self) { return MakeIter(SelfOf(self), PyIter::What::kKeys, false); },
          "Iterates over the keys (bytes), lazily.")
      .def(
          "keys",
          [](PyReadTxn& self) { return MakeIter(SelfOf(self), PyIter::What::kKeys, false); },
          "A lazy iterator over the keys (bytes).")
      .def(
          "values",
          [](PyReadTxn& self) { return MakeIter(SelfOf(self), PyIter::What::kValues, false); },
          "A lazy iterator over the values (bytes, or memoryviews with buffers=True).")
      .def(
          "items",
          [](PyReadTxn& self) { return MakeIter(SelfOf(self), PyIter::What::kItems, false); },
          "A lazy iterator over (key, value) pairs.")
      .def_property_readonly("buffers", [](const PyReadTxn& t) { return t.buffers; })
      .def_property_readonly(
          "active", [](const PyReadTxn& t) { return t.state == PyReadTxn::State::kActive; })
      .def("__repr__", [](const PyReadTxn& t) {
        return "<mapkv.ReadTransaction '" + t.path +
               (t.state == PyReadTxn::State::kActive ? "'>" : "' (finished)>");
      });
  MadeByFunctionsOnly(txn);

  auto iter = py::reinterpret_borrow<py::class_<PyIter>>(m.attr("Iterator"));
  iter.def(
          "__iter__", [](PyIter& self) -> PyIter& { return self; },
          py::return_value_policy::reference)
      .def("__next__", &Next)
      .def(
          "close", [](PyIter& it) { it.Finish(); },
          "Stops the iteration (and ends its read transaction when it has one of its own).");
  reinterpret_cast<PyTypeObject*>(iter.ptr())->tp_iternext = IterNextSlot;
  PyType_Modified(reinterpret_cast<PyTypeObject*>(iter.ptr()));
  MadeByFunctionsOnly(iter);
}

}  // namespace python
}  // namespace mapkv
