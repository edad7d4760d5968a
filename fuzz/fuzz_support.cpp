#include "fuzz_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace hetrain::fuzz {
namespace {
std::string make_scratch_dir() {
  namespace fs = std::filesystem;
  const fs::path base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path();
  const fs::path dir = base / ("hetrain-fuzz-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  static const std::string kept = dir.string();
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(kept, ec);
  });
  return dir.string();
}
} // namespace

const std::string &scratch_dir() {
  static const std::string dir = make_scratch_dir();
  return dir;
}

void write_file(const std::string &path, const uint8_t *data, size_t size) {
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size)) {
    std::perror(path.c_str());
    std::abort(); // the harness, not the parser, failed: stop loudly
  }
  std::fclose(f);
}

void write_file(const std::string &path, const std::vector<uint8_t> &bytes) {
  write_file(path, bytes.data(), bytes.size());
}

void reset_dir(const std::string &dir) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
}

uint8_t Bytes::u8() { return at_ < size_ ? data_[at_++] : 0; }
uint16_t Bytes::u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
uint32_t Bytes::u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }

std::vector<uint8_t> Bytes::take(size_t n) {
  n = std::min(n, remaining());
  std::vector<uint8_t> out(data_ + at_, data_ + at_ + n);
  at_ += n;
  return out;
}

} // namespace hetrain::fuzz
