// What `mapkv compact` and `mapkv backup` share: both run a rewrite of include/mapkv/compact.h
// (Compact, Backup), with a progress bar that follows its phases, and report the leftovers of
// killed runs that it found.
#ifndef MAPKV_TOOLS_REWRITE_H_
#define MAPKV_TOOLS_REWRITE_H_

#include <string>
#include <string_view>

#include "common.h"
#include "mapkv/compact.h"

namespace mapkv::tools {

// Sets options->progress to draw `progress`: the keys copied under its own label, then the flush
// and the rename. `progress` must outlive the rewrite.
void FollowProgress(Progress* progress, CompactOptions* options);

// One line on stderr per leftover of a killed run to `dst` that the rewrite removed or left alone.
void ReportLeftovers(std::string_view command, const std::string& dst, const CompactResult& result);

// Live bytes copied per second of the run, in MiB.
double MiBPerSecond(const CompactResult& result);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_REWRITE_H_
