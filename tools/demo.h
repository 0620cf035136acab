// `mapkv demo`: several processes sharing one database, with every value checked.
#ifndef MAPKV_TOOLS_DEMO_H_
#define MAPKV_TOOLS_DEMO_H_

#include <string>
#include <vector>

namespace mapkv::tools {

// Runs the demo with the arguments after "demo"; returns the exit status (see command.h).
int RunDemo(const std::vector<std::string>& args);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_DEMO_H_
