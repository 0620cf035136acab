#include "rewrite.h"

#include <cstdio>

#include "src/platform/fs.h"

namespace mapkv::tools {

void FollowProgress(Progress* progress, CompactOptions* options) {
  options->progress = [progress,
                       phase = CompactProgress::Phase::kCopy](const CompactProgress& p) mutable {
    if (p.phase != phase) {
      phase = p.phase;
      progress->set_label(phase == CompactProgress::Phase::kFlush ? "flushing to disk"
                                                                  : "renaming into place");
    }
    progress->set_total(p.keys_total);
    progress->Update(p.keys_done);
  };
}

void ReportLeftovers(std::string_view command, const std::string& dst,
                     const CompactResult& result) {
  const std::string name(command);
  for (const std::string& leftover : result.removed_leftovers) {
    const bool backup = internal::IsTempNameOf(internal::BaseName(leftover), dst, "backup");
    std::fprintf(stderr, "mapkv %s: removed %s, left by an interrupted %s\n", name.c_str(),
                 leftover.c_str(), backup ? "backup" : "compaction");
  }
  for (const std::string& kept : result.kept_leftovers) {
    std::fprintf(stderr, "mapkv %s: %s\n", name.c_str(), kept.c_str());
  }
}

double MiBPerSecond(const CompactResult& result) {
  const double seconds = static_cast<double>(result.micros) / 1e6;
  return seconds > 0 ? static_cast<double>(result.live_bytes) / (1 << 20) / seconds : 0.0;
}

}  // namespace mapkv::tools
