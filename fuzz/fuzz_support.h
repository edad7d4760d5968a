// What the fuzz targets share (fuzz/README.md). Each target feeds libFuzzer's bytes to one parser
// of outside input and holds it to hetrain's promise for bad input: a UserError (one clear message,
// exit code 2) or success, nothing else. Any other exception escapes LLVMFuzzerTestOneInput, ends
// in std::terminate and is reported as a crash, like a sanitizer finding or a signal.
#pragma once

#include "hetrain/common/error.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hetrain::fuzz {

// A private folder under /dev/shm (tmpfs: no disk write per execution), made on first use and
// removed at exit, for parsers that take file names.
const std::string &scratch_dir();
// Writes `size` bytes to `path`, replacing what was there.
void write_file(const std::string &path, const uint8_t *data, size_t size);
void write_file(const std::string &path, const std::vector<uint8_t> &bytes);
// Removes everything below `dir` and makes it again, empty.
void reset_dir(const std::string &dir);

// A little-endian reader of the input that never reads past its end (then it yields zeros).
class Bytes {
public:
  Bytes(const uint8_t *data, size_t size) : data_(data), size_(size) {}
  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  // The next `n` bytes (fewer at the end of the input).
  std::vector<uint8_t> take(size_t n);
  std::vector<uint8_t> rest() { return take(remaining()); }
  size_t remaining() const { return size_ - at_; }

private:
  const uint8_t *data_;
  size_t size_, at_ = 0;
};

// Runs `parse`; the UserError that bad input must produce is the expected outcome.
template <class Parse> void expect_user_error_or_success(Parse &&parse) {
  try {
    parse();
  } catch (const UserError &) {
  }
}

} // namespace hetrain::fuzz
