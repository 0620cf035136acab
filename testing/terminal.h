// The terminal behind a standard stream, for the tool's progress bars and the tests that pipe
// binary data through a child's standard streams. The OS calls are in terminal_posix.cc and
// terminal_win32.cc.
#ifndef MAPKV_TESTING_TERMINAL_H_
#define MAPKV_TESTING_TERMINAL_H_

namespace mapkv::internal {

enum class StdStream { kIn = 0, kOut = 1, kErr = 2 };

// True when the stream is a terminal (isatty): progress bars and colours only then.
bool IsTerminal(StdStream stream);

// Columns of the terminal behind the stream; 0 when it is not one or cannot say.
int TerminalColumns(StdStream stream);

// Switches a standard stream to binary mode where the platform distinguishes (not POSIX).
void SetBinaryMode(StdStream stream);

}  // namespace mapkv::internal

#endif  // MAPKV_TESTING_TERMINAL_H_
