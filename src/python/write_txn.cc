// mapkv.Transaction: the one write transaction across processes (DB.transaction(),
// DB.begin(write=True)), committed when its `with` block ends normally, aborted when it raises.
#include <memory>
#include <utility>

#include "src/python/common.h"
#include "src/python/handles.h"

namespace mapkv {
namespace python {

WriteTxn& PyTxn::Active() {
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

namespace {

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

void AbortTxn(PyTxn& t) {
  if (t.state != PyTxn::State::kActive) return;  // aborting twice, or what never began, is fine
  t.Active().Abort();
  FinishTxn(t);
}

// In a format version 1 file, a commit from a thread that holds a read transaction of the handle
// would wait for itself: it is refused, and the transaction aborted (FailedPreconditionError says
// why). A snapshot (version 4) holds no lock, and the commit goes through.
void CommitTxn(PyTxn& t) {
  WriteTxn& txn = t.Active();
  try {
    t.owner.cast<PyDB&>().CheckWritable();
  } catch (py::error_already_set&) {
    AbortTxn(t);
    throw;
  }
  absl::Status s;
  {
    py::gil_scoped_release nogil;
    s = txn.Commit();
  }
  FinishTxn(t);
  if (!s.ok()) ThrowStatus(s);
}

py::object TxnGet(PyTxn& t, py::handle key, py::object dflt, bool raise) {
  return GetFromTxn(t.Active(), key, std::move(dflt), raise,
                    [](std::string_view v) { return py::object(ToBytes(v)); });
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

}  // namespace

void DefineWriteTxn(py::module_& m) {
  auto txn = py::reinterpret_borrow<py::class_<PyTxn>>(m.attr("Transaction"));
  txn.def(
         "__enter__",
         [](PyTxn& t) -> PyTxn& {
           if (t.state == PyTxn::State::kActive) {
             t.Active();  // begun by DB.begin(write=True): only by this thread
           } else {
             BeginTxn(t);
           }
           return t;
         },
         py::return_value_policy::reference)
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
      .def(
          "__contains__",
          [](PyTxn& t, py::handle k) { return !TxnGet(t, k, py::none(), false).is_none(); },
          py::arg("key"))
      .def("__setitem__", &TxnPut, py::arg("key"), py::arg("value"))
      .def("put", &TxnPut, py::arg("key"), py::arg("value"))
      .def(
          "__delitem__", [](PyTxn& t, py::handle k) { TxnDelete(t, k, true); }, py::arg("key"))
      .def(
          "delete", [](PyTxn& t, py::handle k) { TxnDelete(t, k, false); }, py::arg("key"));
  MadeByFunctionsOnly(txn);
}

}  // namespace python
}  // namespace mapkv
