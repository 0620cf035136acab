// terminal.h on Windows.
#include <fcntl.h>
#include <io.h>
#include <windows.h>

#include "testing/terminal.h"

namespace mapkv::internal {
namespace {

int FdOf(StdStream stream) { return static_cast<int>(stream); }

}  // namespace

bool IsTerminal(StdStream stream) { return _isatty(FdOf(stream)) != 0; }

int TerminalColumns(StdStream stream) {
  HANDLE h = reinterpret_cast<HANDLE>(_get_osfhandle(FdOf(stream)));
  CONSOLE_SCREEN_BUFFER_INFO info;
  if (h == INVALID_HANDLE_VALUE || !GetConsoleScreenBufferInfo(h, &info)) return 0;
  return info.srWindow.Right - info.srWindow.Left + 1;
}

void SetBinaryMode(StdStream stream) { _setmode(FdOf(stream), _O_BINARY); }

}  // namespace mapkv::internal
