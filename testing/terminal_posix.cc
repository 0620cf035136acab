// terminal.h on POSIX.
#include <sys/ioctl.h>
#include <unistd.h>

#include "testing/terminal.h"

namespace mapkv::internal {

bool IsTerminal(StdStream stream) { return isatty(static_cast<int>(stream)) == 1; }

int TerminalColumns(StdStream stream) {
  winsize ws{};
  if (ioctl(static_cast<int>(stream), TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

void SetBinaryMode(StdStream) {}

}  // namespace mapkv::internal
