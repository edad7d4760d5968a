// Importers for the two raw formats users bring: MNIST-style IDX and the CIFAR-10 binary format.
// Both validate everything they read and throw UserError naming the file and the problem.
#include "hetrain/common/error.h"
#include "hetrain/data/image_set.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace hetrain {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803; // unsigned bytes, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801; // unsigned bytes, 1 dimension
constexpr int64_t kMaxSide = 4096;               // larger "images" mean a misread header

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void require_regular_file(const std::string &path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw UserError(fmt::format("{}: no such file", path));
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(fmt::format("{}: not a regular file", path));
  if (std::filesystem::file_size(path, ec) == 0)
    throw UserError(fmt::format("{}: file is empty", path));
}

// Reads a whole file, decompressing gzip transparently. A name ending in .gz must be gzip.
std::vector<uint8_t> read_maybe_gzip(const std::string &path) {
  require_regular_file(path);
  if (ends_with(path, ".gz")) {
    std::ifstream raw(path, std::ios::binary);
    unsigned char head[2] = {0, 0};
    raw.read(reinterpret_cast<char *>(head), 2);
    if (raw.gcount() < 2 || head[0] != 0x1f || head[1] != 0x8b)
      throw UserError(fmt::format("{}: named .gz but is not gzip-compressed", path));
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    throw UserError(fmt::format("{}: cannot open", path));
  std::vector<uint8_t> data;
  std::vector<uint8_t> block(1 << 20);
  for (;;) {
    int n = gzread(file, block.data(), static_cast<unsigned>(block.size()));
    if (n < 0) {
      int errnum = 0;
      std::string message = gzerror(file, &errnum);
      gzclose(file);
      throw UserError(fmt::format("{}: corrupt gzip data ({})", path, message));
    }
    if (n == 0)
      break;
    data.insert(data.end(), block.begin(), block.begin() + n);
  }
  // A gzip stream cut short reads as a clean end of file with zlib's transparent mode; gzclose
  // still reports the missing trailer.
  int close_rc = gzclose(file);
  if (close_rc != Z_OK)
    throw UserError(fmt::format("{}: gzip stream is truncated or corrupt", path));
  return data;
}

uint32_t big_endian_u32(const std::vector<uint8_t> &data, size_t offset) {
  return (uint32_t(data[offset]) << 24) | (uint32_t(data[offset + 1]) << 16) |
         (uint32_t(data[offset + 2]) << 8) | uint32_t(data[offset + 3]);
}

struct IdxHeader {
  std::vector<int64_t> dims;
  size_t data_offset = 0;
};

IdxHeader parse_idx_header(const std::vector<uint8_t> &data, const std::string &path,
                           uint32_t expected_magic, const char *what) {
  if (data.size() < 4)
    throw UserError(
        fmt::format("{}: truncated: {} bytes is too short for an IDX header", path, data.size()));
  uint32_t magic = big_endian_u32(data, 0);
  if (magic != expected_magic)
    throw UserError(fmt::format("{}: bad magic number 0x{:08x}, expected 0x{:08x} (IDX {})", path,
                                magic, expected_magic, what));
  IdxHeader header;
  size_t ndims = magic & 0xff;
  header.data_offset = 4 + 4 * ndims;
  if (data.size() < header.data_offset)
    throw UserError(fmt::format("{}: truncated inside the IDX header", path));
  for (size_t i = 0; i < ndims; ++i)
    header.dims.push_back(static_cast<int64_t>(big_endian_u32(data, 4 + 4 * i)));
  return header;
}

void check_payload(const std::vector<uint8_t> &data, const IdxHeader &header, int64_t expected,
                   const std::string &path) {
  int64_t present = static_cast<int64_t>(data.size() - header.data_offset);
  if (present < expected)
    throw UserError(fmt::format("{}: truncated: the header promises {} bytes of data but only {} "
                                "follow",
                                path, expected, present));
  if (present > expected)
    throw UserError(fmt::format("{}: {} unexpected bytes after the {} bytes the header promises",
                                path, present - expected, expected));
}

std::vector<std::string> numbered_class_names(const std::vector<int32_t> &labels) {
  int32_t max_label = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end());
  std::vector<std::string> names;
  for (int32_t c = 0; c <= max_label; ++c)
    names.push_back(std::to_string(c));
  return names;
}

} // namespace

ImageSet read_idx(const std::string &images_path, const std::string &labels_path) {
  std::vector<uint8_t> images = read_maybe_gzip(images_path);
  IdxHeader image_header =
      parse_idx_header(images, images_path, kIdxImagesMagic, "unsigned-byte images, 3 dims");
  int64_t count = image_header.dims[0], rows = image_header.dims[1], cols = image_header.dims[2];
  if (count == 0)
    throw UserError(fmt::format("{}: contains no images", images_path));
  if (rows <= 0 || cols <= 0 || rows > kMaxSide || cols > kMaxSide)
    throw UserError(fmt::format("{}: bad image dimensions {}x{} (each side must be 1..{})",
                                images_path, rows, cols, kMaxSide));
  check_payload(images, image_header, count * rows * cols, images_path);

  std::vector<uint8_t> labels = read_maybe_gzip(labels_path);
  IdxHeader label_header =
      parse_idx_header(labels, labels_path, kIdxLabelsMagic, "unsigned-byte labels, 1 dim");
  int64_t label_count = label_header.dims[0];
  if (label_count != count)
    throw UserError(fmt::format("count mismatch: {} has {} images but {} has {} labels",
                                images_path, count, labels_path, label_count));
  check_payload(labels, label_header, label_count, labels_path);

  ImageSet set;
  set.count = count;
  set.channels = 1;
  set.height = rows;
  set.width = cols;
  set.pixels.assign(images.begin() + static_cast<std::ptrdiff_t>(image_header.data_offset),
                    images.end());
  set.labels.assign(labels.begin() + static_cast<std::ptrdiff_t>(label_header.data_offset),
                    labels.end());
  set.class_names = numbered_class_names(set.labels);
  set.source = fmt::format("idx:{},{}", std::filesystem::path(images_path).filename().string(),
                           std::filesystem::path(labels_path).filename().string());
  return set;
}

ImageSet read_cifar10(const std::vector<std::string> &paths) {
  constexpr int64_t kPixels = 3 * 32 * 32, kRecord = 1 + kPixels;
  if (paths.empty())
    throw UserError("import-cifar: no input files given");
  ImageSet set;
  set.channels = 3;
  set.height = 32;
  set.width = 32;
  set.class_names = {"airplane", "automobile", "bird",  "cat",  "deer",
                     "dog",      "frog",       "horse", "ship", "truck"};
  for (const std::string &path : paths) {
    require_regular_file(path);
    auto size = static_cast<int64_t>(std::filesystem::file_size(path));
    if (size % kRecord != 0)
      throw UserError(fmt::format("{}: size {} is not a multiple of the CIFAR-10 record size {} "
                                  "(truncated, or not a CIFAR-10 binary batch)",
                                  path, size, kRecord));
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> record(kRecord);
    for (int64_t r = 0; r < size / kRecord; ++r) {
      in.read(reinterpret_cast<char *>(record.data()), kRecord);
      if (!in)
        throw UserError(fmt::format("{}: read error at record {}", path, r));
      if (record[0] >= 10)
        throw UserError(fmt::format("{}: record {} has label {}, CIFAR-10 labels are 0..9", path, r,
                                    record[0]));
      set.labels.push_back(record[0]);
      set.pixels.insert(set.pixels.end(), record.begin() + 1, record.end());
    }
    set.source +=
        (set.source.empty() ? "cifar10:" : ",") + std::filesystem::path(path).filename().string();
  }
  set.count = static_cast<int64_t>(set.labels.size());
  return set;
}

} // namespace hetrain
