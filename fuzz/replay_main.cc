// The plain replay driver: links with any fuzz target instead of libFuzzer (any compiler, any
// sanitizer including TSan, gdb) and runs it on files and directories of inputs, the way
// libFuzzer runs a corpus. A failing input aborts inside the target with its report.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fprintf(stderr,
                 "usage: %s FILE|DIR...\n"
                 "runs the fuzz target on each input file (directories: every file in them,\n"
                 "sorted); exit 0 when all pass, 2 when an input cannot be read; a failing\n"
                 "input aborts with the target's report.\n",
                 argv[0]);
    return argc < 2 ? 2 : 0;
  }
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; i++) {
    std::error_code ec;
    const std::filesystem::path p = argv[i];
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> in_dir;
      for (auto& e : std::filesystem::directory_iterator(p, ec))
        if (e.is_regular_file()) in_dir.push_back(e.path());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (std::filesystem::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "%s: not a file or directory\n", argv[i]);
      return 2;
    }
  }
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in), {}};
    if (!in && !in.eof()) {
      std::fprintf(stderr, "%s: cannot read\n", f.c_str());
      return 2;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%zu inputs ran, all passed\n", files.size());
  return 0;
}
