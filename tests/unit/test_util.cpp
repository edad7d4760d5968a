#include "test_util.h"

#include "hetrain/data/dataset_file.h"

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

namespace hetrain::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "hetrain-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::vector<std::string> TempDir::files() const {
  std::vector<std::string> names;
  for (const auto &entry : fs::directory_iterator(dir_))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

ImageSet synthetic_images(int64_t count, int64_t classes, int64_t side, uint32_t seed,
                          int64_t channels) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60);
  std::uniform_int_distribution<int> label(0, static_cast<int>(classes) - 1);
  ImageSet set;
  set.count = count;
  set.channels = channels;
  set.height = side;
  set.width = side;
  set.source = "synthetic";
  for (int64_t c = 0; c < classes; ++c)
    set.class_names.push_back("class" + std::to_string(c));
  const int64_t stripe = std::max<int64_t>(1, side / classes);
  for (int64_t i = 0; i < count; ++i) {
    int y = label(rng);
    set.labels.push_back(y);
    for (int64_t ch = 0; ch < channels; ++ch)
      for (int64_t r = 0; r < side; ++r)
        for (int64_t col = 0; col < side; ++col) {
          bool lit = r / stripe == y;
          set.pixels.push_back(static_cast<uint8_t>((lit ? 180 : 20) + noise(rng)));
        }
  }
  return set;
}

std::string write_synthetic_dataset(const TempDir &dir, const std::string &name, int64_t count,
                                    int64_t classes, int64_t side, uint32_t seed,
                                    int64_t channels) {
  std::string path = dir.path(name);
  write_dataset_file(path, synthetic_images(count, classes, side, seed, channels));
  return path;
}

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t> &dims,
                               const std::vector<uint8_t> &payload) {
  std::vector<uint8_t> out;
  auto put = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<uint8_t>(v >> shift));
  };
  put(magic);
  for (uint32_t d : dims)
    put(d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void write_bytes(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::string &path, const std::vector<uint8_t> &bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

CommandResult run_hetrain(const std::vector<std::string> &args, const std::string &prefix) {
  std::string command = prefix + "'" HETRAIN_BINARY "'";
  for (const std::string &a : args) {
    std::string quoted = "'";
    for (char c : a)
      quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " " + quoted + "'";
  }
  command += " 2>&1";
  CommandResult result;
  FILE *pipe = popen(command.c_str(), "r");
  if (pipe == nullptr)
    return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

void write_raw_dataset(const std::string &path, h5::Kind image_kind,
                       const std::vector<hsize_t> &image_dims, const std::vector<int32_t> &labels,
                       bool with_labels, std::vector<hsize_t> label_dims) {
  h5::Handle file = h5::create_file(path);
  hsize_t n = 1;
  for (auto d : image_dims)
    n *= d;
  std::vector<uint8_t> bytes(n, 1);
  std::vector<double> floats(n, 1.0);
  h5::write_dataset(file, "images", image_kind,
                    image_kind == h5::Kind::U8 ? static_cast<const void *>(bytes.data())
                                               : static_cast<const void *>(floats.data()),
                    image_dims);
  if (label_dims.empty())
    label_dims = {hsize_t(labels.size())};
  if (with_labels)
    h5::write_dataset(file, "labels", h5::Kind::I32, labels.data(), label_dims);
}

TrainConfig toy_train_config(const TempDir &dir, const std::string &train,
                             const std::string &test) {
  TrainConfig c;
  c.data = train;
  c.test_data = test;
  c.model = "mlp";
  c.epochs = 3;
  c.global_batch = 64;
  c.micro_batch = 16;
  c.optimizer = "momentum";
  c.lr = 0.05;
  c.threads = 1;
  c.checkpoint_dir = dir.path("ckpt");
  c.progress_seconds = 1000;
  return c;
}

} // namespace hetrain::testing
