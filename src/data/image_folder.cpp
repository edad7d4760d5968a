// `hetrain data import-images`: a folder of class subfolders of JPEG/PNG/BMP files, decoded and
// resized with OpenCV on several threads (the layout and rules are in image_folder.h).
#include "hetrain/data/image_folder.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/system_info.h"
#include "hetrain/data/dataset_file.h"
#include "image_decode.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>

namespace hetrain {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kMaxSide = 4096;                     // of the output (as the IDX importer)
constexpr int64_t kMaxFileBytes = int64_t{1} << 28;    // 256 MiB: no JPEG/PNG/BMP is this large
constexpr int64_t kMaxSourcePixels = int64_t{1} << 28; // a decompression bomb beyond this

// --- the listing ------------------------------------------------------------------------------

struct ImageFile {
  std::string relative; // "class/sub/file.jpg", '/' separated
  int32_t label = 0;
};

struct Listing {
  std::vector<std::string> classes;
  std::vector<ImageFile> files; // by class, then by relative path
  int64_t ignored = 0;
};

bool hidden(const fs::path &p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

bool image_name(const fs::path &p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

Listing list_folder(const std::string &dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw UserError(fmt::format("{}: no such folder", dir));
  if (!fs::is_directory(dir, ec))
    throw UserError(fmt::format("{}: not a folder (expected {}/<class>/<image>)", dir, dir));
  Listing listing;
  try {
    for (const fs::directory_entry &entry : fs::directory_iterator(dir)) {
      if (hidden(entry.path())) {
        listing.ignored += entry.is_directory() ? 0 : 1;
        continue;
      }
      if (entry.is_directory())
        listing.classes.push_back(entry.path().filename().string());
      else
        ++listing.ignored; // files beside the class folders
    }
    std::sort(listing.classes.begin(), listing.classes.end());
    if (listing.classes.empty())
      throw UserError(fmt::format("{}: no class subfolders (expected {}/<class>/<image>, one "
                                  "subfolder per class)",
                                  dir, dir));
    std::vector<int64_t> per_class(listing.classes.size(), 0);
    for (size_t c = 0; c < listing.classes.size(); ++c) {
      std::vector<std::string> names;
      const fs::path root = fs::path(dir) / listing.classes[c];
      for (auto it = fs::recursive_directory_iterator(root); it != fs::end(it); ++it) {
        if (hidden(it->path())) {
          if (it->is_directory())
            it.disable_recursion_pending();
          else
            ++listing.ignored;
          continue;
        }
        if (it->is_directory())
          continue;
        if (!it->is_regular_file() || !image_name(it->path())) {
          ++listing.ignored;
          continue;
        }
        names.push_back(
            (fs::path(listing.classes[c]) / it->path().lexically_relative(root)).generic_string());
      }
      std::sort(names.begin(), names.end());
      per_class[c] = static_cast<int64_t>(names.size());
      for (std::string &name : names)
        listing.files.push_back({std::move(name), static_cast<int32_t>(c)});
    }
    if (listing.files.empty())
      throw UserError(fmt::format("{}: no images (.jpg, .jpeg, .png, .bmp) in its {} class "
                                  "subfolder{}",
                                  dir, listing.classes.size(),
                                  listing.classes.size() == 1 ? "" : "s"));
    if (listing.classes.size() < 2)
      throw UserError(fmt::format("{}: needs at least 2 classes (one subfolder per class); it has "
                                  "only '{}'",
                                  dir, listing.classes[0]));
    for (size_t c = 0; c < listing.classes.size(); ++c)
      if (per_class[c] == 0)
        throw UserError(fmt::format("{}: class folder '{}' has no images (.jpg, .jpeg, .png, .bmp)",
                                    dir, listing.classes[c]));
  } catch (const fs::filesystem_error &e) {
    throw UserError(fmt::format("{}: cannot list it: {}", dir, e.what()));
  }
  return listing;
}

// --- one image ----------------------------------------------------------------------------------

uint32_t be16(const std::vector<uint8_t> &b, size_t at) {
  return (uint32_t(b[at]) << 8) | b[at + 1];
}
uint32_t be32(const std::vector<uint8_t> &b, size_t at) {
  return (be16(b, at) << 16) | be16(b, at + 2);
}
int64_t le32(const std::vector<uint8_t> &b, size_t at) {
  return static_cast<int32_t>(uint32_t(b[at]) | (uint32_t(b[at + 1]) << 8) |
                              (uint32_t(b[at + 2]) << 16) | (uint32_t(b[at + 3]) << 24));
}

// The checks before OpenCV sees the bytes: a known format by content, a size OpenCV can decode
// without exhausting memory, and for JPEG an end-of-image marker after the image data (libjpeg
// would decode a cut-off JPEG with its missing part grey, and only print a warning).
// Returns the problem, or "" when the bytes may go to OpenCV. Sets `format`.
std::string check_bytes(const std::vector<uint8_t> &b, std::string &format) {
  int64_t width = 0, height = 0;
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() >= 24 && std::equal(kPng, kPng + 8, b.begin())) {
    format = "PNG";
    width = be32(b, 16); // IHDR is the first chunk
    height = be32(b, 20);
  } else if (b.size() >= 26 && b[0] == 'B' && b[1] == 'M') {
    format = "BMP";
    bool core = le32(b, 14) == 12; // OS/2 header: 16-bit sides
    width = core ? int64_t(b[18] | (b[19] << 8)) : le32(b, 18);
    height = core ? int64_t(b[20] | (b[21] << 8)) : std::abs(le32(b, 22));
  } else if (b.size() >= 4 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) {
    format = "JPEG";
    size_t at = 2;
    bool scan = false;
    while (!scan) {
      if (at + 4 > b.size())
        return "truncated JPEG (it ends before the image data)";
      if (b[at] != 0xff)
        return fmt::format("corrupt JPEG (no marker at byte {})", at);
      const uint8_t marker = b[at + 1];
      if (marker == 0xff) { // fill byte
        ++at;
        continue;
      }
      if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { // no length
        at += 2;
        continue;
      }
      if (marker == 0xd9)
        return "corrupt JPEG (it ends before the image data)";
      const size_t length = be16(b, at + 2);
      if (length < 2 || at + 2 + length > b.size())
        return "truncated JPEG (it ends inside a header segment)";
      const bool frame =
          marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
      if (frame && length >= 7) {
        height = be16(b, at + 5);
        width = be16(b, at + 7);
      }
      scan = marker == 0xda;
      at += 2 + length;
    }
    bool end = false;
    for (size_t i = at; i + 1 < b.size() && !end; ++i)
      end = b[i] == 0xff && b[i + 1] == 0xd9;
    if (!end)
      return "truncated JPEG (no end-of-image marker after the image data)";
    if (width == 0 && height == 0)
      return "corrupt JPEG (no frame header before the image data)";
  } else {
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(b.size(), 4); ++i)
      head += fmt::format("{}{:02x}", i == 0 ? "" : " ", b[i]);
    return fmt::format("not a JPEG, PNG or BMP file (it starts with bytes {})", head);
  }
  if (width <= 0 || height < 0 || (height == 0 && format != "JPEG"))
    return fmt::format("corrupt {} (its header gives {}x{} pixels)", format, width, height);
  // Sides first: a header's two 32-bit sides can multiply past int64 (found by
  // fuzz/fuzz_image_folder.cpp); either side beyond the pixel limit is over it anyway.
  if (width > kMaxSourcePixels || height > kMaxSourcePixels || width * height > kMaxSourcePixels)
    return fmt::format("{}x{} pixels is more than the {} megapixels decoded at most", width, height,
                       kMaxSourcePixels >> 20);
  return "";
}

std::string read_bytes(const std::string &path, std::vector<uint8_t> &bytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec)
    return fmt::format("cannot read it ({})", ec.message());
  if (size == 0)
    return "file is empty";
  if (static_cast<int64_t>(size) > kMaxFileBytes)
    return fmt::format("{} bytes is larger than the {} MiB an image may be", size,
                       kMaxFileBytes >> 20);
  std::ifstream in(path, std::ios::binary);
  bytes.resize(size);
  in.read(reinterpret_cast<char *>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in || in.gcount() != static_cast<std::streamsize>(size))
    return "cannot read it";
  return "";
}

// Decodes one file into `out` ([C, H, W] bytes). Returns the problem, or "" on success.
std::string decode_image(const std::string &path, const ImageFolderOptions &o, uint8_t *out) {
  std::vector<uint8_t> bytes;
  std::string problem = read_bytes(path, bytes);
  std::string format;
  if (problem.empty())
    problem = check_bytes(bytes, format);
  if (!problem.empty())
    return problem;
  return decode_pixels(bytes, format, o.channels, o.height, o.width, out);
}

// --- stderr while decoding ----------------------------------------------------------------------

// libpng and libjpeg print their own complaints ("libpng error: Read Error", "Premature end of
// JPEG file") on stderr, without the file's name and from any thread. They go to /dev/null
// while the threads decode; hetrain names each bad file itself. Our progress uses `fd()`.
class QuietStderr {
public:
  QuietStderr() {
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    const int null = open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0)
      dup2(null, STDERR_FILENO);
    if (null >= 0)
      close(null);
  }
  ~QuietStderr() {
    if (saved_ >= 0) {
      dup2(saved_, STDERR_FILENO);
      close(saved_);
    }
  }
  QuietStderr(const QuietStderr &) = delete;
  QuietStderr &operator=(const QuietStderr &) = delete;
  int fd() const { return saved_ >= 0 ? saved_ : STDERR_FILENO; }

private:
  int saved_ = -1;
};

void write_all(int fd, const std::string &text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0)
      return;
    done += static_cast<size_t>(n);
  }
}

// A bar redrawn in place on a terminal; a plain line per 10% otherwise (logs, pipes).
class Progress {
public:
  Progress(int fd, int64_t total) : fd_(fd), total_(total), terminal_(isatty(fd) == 1) {}
  void show(int64_t done, bool last) {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const int64_t percent = total_ == 0 ? 100 : done * 100 / total_;
    if (terminal_) {
      if (!last && now - shown_ < std::chrono::milliseconds(100))
        return;
      shown_ = now;
      constexpr int64_t kWidth = 30;
      const int64_t filled = total_ == 0 ? kWidth : done * kWidth / total_;
      write_all(fd_,
                fmt::format("\rimport-images [{}{}] {:3d}% {}/{} images, {:.0f}/s\x1b[K{}",
                            std::string(static_cast<size_t>(filled), '#'),
                            std::string(static_cast<size_t>(kWidth - filled), '.'), percent, done,
                            total_, seconds > 0 ? done / seconds : 0.0, last ? "\n" : ""));
    } else if (percent / 10 > reported_ / 10 || (last && percent > reported_)) {
      reported_ = percent;
      write_all(fd_, fmt::format("import-images: {}% ({} of {} images, {:.1f} s)\n", percent, done,
                                 total_, seconds));
    }
  }

private:
  int fd_;
  int64_t total_;
  bool terminal_;
  int64_t reported_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), shown_;
};

// --- all images ---------------------------------------------------------------------------------

struct Decoded {
  std::vector<uint8_t> pixels;       // [files, C, H, W]; a bad file's slot is unused
  std::vector<std::string> problems; // per file; "" when it decoded
  int64_t first_bad = -1;            // without skip_bad_images: the first bad file in order
};

Decoded decode_all(const ImageFolderOptions &o, const Listing &listing, int threads) {
  const auto n = static_cast<int64_t>(listing.files.size());
  const int64_t sample = o.channels * o.height * o.width;
  Decoded d;
  d.pixels.resize(static_cast<size_t>(n * sample));
  d.problems.resize(static_cast<size_t>(n));
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  // Files are claimed in increasing order and a claimed file is always decoded, so when a bad
  // file stops the claiming every file before it has been decoded: the first bad file is the
  // same whatever the thread count.
  auto work = [&] {
    while (!stop) {
      const int64_t i = next++;
      if (i >= n)
        break;
      const std::string path =
          (fs::path(o.dir) / listing.files[static_cast<size_t>(i)].relative).string();
      std::string problem;
      try {
        problem = decode_image(path, o, d.pixels.data() + i * sample);
      } catch (const std::exception &e) {
        problem = fmt::format("cannot decode it ({})", first_line(e.what()));
      }
      if (!problem.empty()) {
        d.problems[static_cast<size_t>(i)] = problem;
        if (!o.skip_bad_images)
          stop = true;
      }
      ++done;
    }
  };
  prepare_decoder_threads();
  {
    QuietStderr quiet;
    Progress progress(quiet.fd(), n);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back(work);
    while (done < n && !stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (o.progress)
        progress.show(done, false);
    }
    for (std::thread &w : workers)
      w.join();
    if (o.progress) // on a terminal, also ends the bar's line before an error message
      progress.show(done, true);
  }
  for (int64_t i = 0; i < n && d.first_bad < 0 && !o.skip_bad_images; ++i)
    if (!d.problems[static_cast<size_t>(i)].empty())
      d.first_bad = i;
  return d;
}

// FNV-1a, 64 bits: the same on every platform and run.
uint64_t fnv1a(const std::string &text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Per class, which readable files go to the validation set (see image_folder.h).
std::vector<bool> choose_validation(const Listing &listing, const Decoded &d, double fraction) {
  std::vector<bool> val(listing.files.size(), false);
  if (fraction <= 0)
    return val;
  for (size_t c = 0; c < listing.classes.size(); ++c) {
    std::vector<std::pair<uint64_t, size_t>> ranked;
    for (size_t i = 0; i < listing.files.size(); ++i)
      if (listing.files[i].label == static_cast<int32_t>(c) && d.problems[i].empty())
        ranked.emplace_back(fnv1a(listing.files[i].relative), i);
    const auto n = static_cast<int64_t>(ranked.size());
    const int64_t k = std::min(n - 1, std::max<int64_t>(1, std::llround(fraction * n)));
    if (k <= 0)
      continue;
    std::partial_sort(
        ranked.begin(), ranked.begin() + k, ranked.end(), [&](const auto &a, const auto &b) {
          return a.first != b.first
                     ? a.first < b.first
                     : listing.files[a.second].relative < listing.files[b.second].relative;
        });
    for (int64_t j = 0; j < k; ++j)
      val[ranked[static_cast<size_t>(j)].second] = true;
  }
  return val;
}

ImageSet empty_set(const ImageFolderOptions &o, const Listing &listing, const std::string &source) {
  ImageSet set;
  set.channels = o.channels;
  set.height = o.height;
  set.width = o.width;
  set.class_names = listing.classes;
  set.source = source;
  return set;
}

void check_options(const ImageFolderOptions &o) {
  if (!kHaveImageDecoder)
    throw UserError("data import-images: this hetrain was built without OpenCV (CMake did not "
                    "find it); install Debian's libopencv-imgcodecs-dev and "
                    "libopencv-imgproc-dev (scripts/install-deps.sh does) and rebuild");
  if (o.height < 1 || o.width < 1 || o.height > kMaxSide || o.width > kMaxSide)
    throw UserError(
        fmt::format("--size {}x{}: each side must be 1..{}", o.height, o.width, kMaxSide));
  if (o.channels != 1 && o.channels != 3)
    throw UserError(fmt::format("--channels {}: must be 1 (grayscale) or 3 (RGB)", o.channels));
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    throw UserError(
        fmt::format("--val-fraction {}: must be at least 0 and below 1", o.val_fraction));
  if (o.threads < 0)
    throw UserError(
        fmt::format("--threads {}: must be at least 1 (0: all usable cores)", o.threads));
}

std::string describe(const std::string &path, const ImageSet &set) {
  return fmt::format("wrote {}: {} samples of {}x{}x{}, {} classes", path, set.count, set.channels,
                     set.height, set.width, set.class_names.size());
}

} // namespace

void parse_image_size(const std::string &text, int64_t &height, int64_t &width) {
  const size_t x = text.find_first_of("xX");
  auto side = [&](const std::string &s) -> int64_t {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit))
      return -1;
    return std::stoll(s);
  };
  const int64_t h = x == std::string::npos ? -1 : side(text.substr(0, x));
  const int64_t w = x == std::string::npos ? -1 : side(text.substr(x + 1));
  if (h < 1 || w < 1 || h > kMaxSide || w > kMaxSide)
    throw UserError(
        fmt::format("--size '{}': expected HxW with each side 1..{} (e.g. 32x32)", text, kMaxSide));
  height = h;
  width = w;
}

std::string default_val_path(const std::string &out_path) {
  const fs::path p(out_path);
  const std::string ext = p.extension().string();
  const std::string stem =
      ext.empty() ? out_path : out_path.substr(0, out_path.size() - ext.size());
  return stem + "-val" + (ext.empty() ? ".h5" : ext);
}

ImageFolderData read_image_folder(const ImageFolderOptions &o) {
  check_options(o);
  const Listing listing = list_folder(o.dir);
  const auto n = static_cast<int64_t>(listing.files.size());
  const int64_t bytes = n * o.channels * o.height * o.width;
  // The decoded images, then write_dataset_file's in-memory HDF5 image of them.
  const int64_t available = meminfo_bytes("MemAvailable");
  if (available > 0 && 2 * bytes > available)
    throw UserError(fmt::format("{}: {} images of {}x{}x{} need {:.1f} GiB of memory to import, "
                                "but {:.1f} GiB are available; choose a smaller --size",
                                o.dir, n, o.channels, o.height, o.width, 2.0 * bytes / (1 << 30),
                                double(available) / (1 << 30)));
  const int threads =
      static_cast<int>(std::clamp<int64_t>(o.threads > 0 ? o.threads : usable_cores(), 1, n));
  Decoded d = decode_all(o, listing, threads);
  if (d.first_bad >= 0) {
    const auto i = static_cast<size_t>(d.first_bad);
    throw UserError(fmt::format("{}: {}; --skip-bad-images skips such files",
                                (fs::path(o.dir) / listing.files[i].relative).string(),
                                d.problems[i]));
  }

  ImageFolderData out;
  out.ignored = listing.ignored;
  std::vector<int64_t> readable(listing.classes.size(), 0);
  for (size_t i = 0; i < listing.files.size(); ++i) {
    if (!d.problems[i].empty())
      out.skipped.push_back(fmt::format(
          "{}: {}", (fs::path(o.dir) / listing.files[i].relative).string(), d.problems[i]));
    else
      ++readable[static_cast<size_t>(listing.files[i].label)];
  }
  for (size_t c = 0; c < listing.classes.size(); ++c)
    if (readable[c] == 0)
      throw UserError(fmt::format(
          "{}: class folder '{}' has no readable images (all {} skipped)", o.dir,
          listing.classes[c],
          std::count_if(listing.files.begin(), listing.files.end(),
                        [&](const ImageFile &f) { return f.label == static_cast<int32_t>(c); })));

  const std::vector<bool> val = choose_validation(listing, d, o.val_fraction);
  const std::string name =
      fs::path(o.dir).lexically_normal().filename().string().empty()
          ? fs::path(o.dir).lexically_normal().parent_path().filename().string()
          : fs::path(o.dir).lexically_normal().filename().string();
  const bool split = o.val_fraction > 0;
  out.train = empty_set(
      o, listing,
      fmt::format("image-folder:{}{}", name,
                  split ? fmt::format(" (training; --val-fraction {})", o.val_fraction) : ""));
  out.val = empty_set(
      o, listing,
      fmt::format("image-folder:{} (validation; --val-fraction {})", name, o.val_fraction));
  // The validation images are copied out; the training images move forward in place, so the
  // peak memory is the decoded images plus the validation set.
  const int64_t sample = o.channels * o.height * o.width;
  int64_t kept = 0;
  for (size_t i = 0; i < listing.files.size(); ++i) {
    if (!d.problems[i].empty())
      continue;
    const uint8_t *pixels = d.pixels.data() + static_cast<int64_t>(i) * sample;
    if (val[i]) {
      out.val.pixels.insert(out.val.pixels.end(), pixels, pixels + sample);
      out.val.labels.push_back(listing.files[i].label);
    } else {
      if (kept != static_cast<int64_t>(i))
        std::copy(pixels, pixels + sample, d.pixels.data() + kept * sample);
      out.train.labels.push_back(listing.files[i].label);
      ++kept;
    }
  }
  d.pixels.resize(static_cast<size_t>(kept * sample));
  d.pixels.shrink_to_fit();
  out.train.pixels = std::move(d.pixels);
  out.train.count = kept;
  out.val.count = static_cast<int64_t>(out.val.labels.size());
  if (split && out.val.count == 0)
    throw UserError(fmt::format("--val-fraction {}: no class has 2 readable images, so none can "
                                "go to the validation set",
                                o.val_fraction));
  return out;
}

std::string import_image_folder(const ImageFolderOptions &options, const std::string &out_path,
                                std::string val_path) {
  check_options(options);
  const bool split = options.val_fraction > 0;
  if (split && val_path.empty())
    val_path = default_val_path(out_path);
  if (!split && !val_path.empty())
    throw UserError("--val-out: only with --val-fraction");
  if (split && fs::path(val_path).lexically_normal() == fs::path(out_path).lexically_normal())
    throw UserError(fmt::format("--val-out {}: the same file as --out", val_path));
  // Both targets are checked before the decoding, and both files are renamed into place only
  // when both are written: an import leaves both, or neither.
  AtomicOutputFile train_file(out_path);
  std::unique_ptr<AtomicOutputFile> val_file;
  if (split)
    val_file = std::make_unique<AtomicOutputFile>(val_path);

  ImageFolderData data = read_image_folder(options);
  for (const std::string &skipped : data.skipped)
    fmt::print(stderr, "hetrain: warning: skipped {}\n", skipped);
  std::fflush(stderr);
  write_dataset_file(train_file.temp_path(), data.train);
  if (split)
    write_dataset_file(val_file->temp_path(), data.val);
  if (split)
    val_file->commit();
  train_file.commit();

  std::string summary = fmt::format("{} ({} skipped, {} ignored)", describe(out_path, data.train),
                                    data.skipped.size(), data.ignored);
  if (split)
    summary += "; " + describe(val_path, data.val);
  return summary;
}

} // namespace hetrain
