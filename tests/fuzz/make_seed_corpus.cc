// Writes the open fuzzer's seed corpus (seed_corpus.h) into a directory:
//   make_seed_corpus <data/iso_codes.tsv> <corpus dir>
// Run at CI time, so the seeds are always written by the library being fuzzed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "seed_corpus.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <iso_codes.tsv> <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out = argv[2];
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  const std::filesystem::path work = out / ".work";
  std::filesystem::create_directories(work, ec);
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", work.c_str(), ec.message().c_str());
    return 1;
  }
  absl::StatusOr<std::vector<mapkv::fuzz::Seed>> seeds = mapkv::fuzz::MakeSeeds(argv[1], work);
  std::filesystem::remove_all(work, ec);
  if (!seeds.ok()) {
    std::fprintf(stderr, "%s\n", seeds.status().ToString().c_str());
    return 1;
  }
  for (const mapkv::fuzz::Seed& seed : *seeds) {
    const std::filesystem::path file = out / seed.name;
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f.write(seed.input.data(), static_cast<std::streamsize>(seed.input.size()));
    f.close();
    if (!f) {
      std::fprintf(stderr, "%s: cannot write\n", file.c_str());
      return 1;
    }
    std::printf("%-28s %6zu bytes\n", seed.name.c_str(), seed.input.size());
  }
  return 0;
}
