// mapkv.Error and its subclasses: one per absl::Status code, each also the built-in exception it
// stands for, and the OS's errors for a path that names no file or a directory.
#include <pybind11/eval.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "src/python/common.h"

namespace mapkv {
namespace python {
namespace {

// Defined in Python so that they can inherit from the built-in exceptions they stand for, and be
// pickled by name (multiprocessing sends a worker's exception back to the parent).
constexpr const char* kExceptionSource = R"py(
import builtins as _builtins

class Error(Exception):
    """Base class of mapkv's errors. `code` names the absl::Status code; the message is the
    status message, which names the file (and the key where one is concerned)."""
    code = "UNKNOWN"

class NotFoundError(Error, KeyError):
    """A key that is absent (args[0] is the key, as for dict)."""
    code = "NOT_FOUND"
    def __str__(self):
        if len(self.args) == 1 and isinstance(self.args[0], str):
            return self.args[0]
        return KeyError.__str__(self)

class FileNotFoundError(Error, _builtins.FileNotFoundError):
    """open() or open_cache() of a path that names no file, with create_if_missing=False (or
    read_only=True), or whose directory does not exist. errno is ENOENT, filename the path."""
    code = "NOT_FOUND"

class IsADirectoryError(Error, _builtins.IsADirectoryError):
    """open() or open_cache() of a path that names a directory. errno is EISDIR."""
    code = "FAILED_PRECONDITION"

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
    file held exclusively elsewhere, a finished transaction, a write from a thread that holds a
    read transaction of the same handle, ..."""
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

class OptionIgnoredWarning(UserWarning):
    """An option that an existing file does not take: open_cache()'s capacity on a cache created
    with another, or a max_file_size that the file keeps otherwise. The file's value holds."""

del _builtins
)py";

// The exception class of each absl::StatusCode (indexed by its value, 0..16); never freed, as the
// module is never unloaded.
PyObject* g_errors[17] = {};
PyObject* g_not_found = nullptr;
PyObject* g_file_not_found = nullptr;
PyObject* g_is_a_directory = nullptr;
PyObject* g_option_ignored = nullptr;

// Raises `cls(errno, message, path)`, an OSError subclass, whose str() is the status message.
[[noreturn]] void ThrowOSError(PyObject* cls, int err, const absl::Status& s,
                               const std::string& path) {
  py::object filename = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
  if (!filename) throw py::error_already_set();
  py::object e = py::reinterpret_borrow<py::object>(cls)(err, std::string(s.message()), filename);
  PyErr_SetObject(cls, e.ptr());
  throw py::error_already_set();
}

}  // namespace

PyObject* ErrorClass(absl::StatusCode code) {
  const int i = static_cast<int>(code);
  if (i > 0 && i < 17 && g_errors[i] != nullptr) return g_errors[i];
  return g_errors[static_cast<int>(absl::StatusCode::kUnknown)];
}

PyObject* SetStatusError(const absl::Status& s) {
  const std::string message(s.message());
  PyErr_SetString(ErrorClass(s.code()), message.c_str());
  return nullptr;
}

void ThrowStatus(const absl::Status& s) {
  SetStatusError(s);
  throw py::error_already_set();
}

// DB::Open's only NotFound is a missing file; a directory is recognised by what the path names
// now (the status code of the OS's EISDIR is not Open's to promise).
void ThrowOpenError(const absl::Status& s, const std::string& path) {
  if (absl::IsNotFound(s)) ThrowOSError(g_file_not_found, ENOENT, s, path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) ThrowOSError(g_is_a_directory, EISDIR, s, path);
  ThrowStatus(s);
}

PyObject* SetKeyError(PyObject* key) {
  PyObject* e = PyObject_CallOneArg(g_not_found, key);
  if (e != nullptr) {
    PyErr_SetObject(g_not_found, e);
    Py_DECREF(e);
  }
  return nullptr;
}

void ThrowKeyError(py::handle key) {
  SetKeyError(key.ptr());
  throw py::error_already_set();
}

void WarnOptionIgnored(const std::string& message) {
  if (PyErr_WarnEx(g_option_ignored, message.c_str(), 1) != 0) throw py::error_already_set();
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
  g_file_not_found = py::object(m.attr("FileNotFoundError")).release().ptr();
  g_is_a_directory = py::object(m.attr("IsADirectoryError")).release().ptr();
  g_option_ignored = py::object(m.attr("OptionIgnoredWarning")).release().ptr();
}

}  // namespace python
}  // namespace mapkv
