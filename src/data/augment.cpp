#include "hetrain/data/augment.h"

#include "hetrain/common/error.h"
#include "hetrain/common/splitmix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace hetrain {
namespace {

AugmentOp parse_one(const std::string &item) {
  const auto colon = item.find(':');
  const std::string name = item.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : item.substr(colon + 1);
  double value = 0;
  if (!arg.empty()) {
    std::istringstream in(arg);
    if (!(in >> value) || !in.eof())
      throw UserError(fmt::format("--augment {}: '{}' is not a number", item, arg));
  }
  if (name == "crop") {
    const double pad = arg.empty() ? 4 : value;
    if (pad < 0 || pad != std::floor(pad))
      throw UserError(fmt::format("--augment {}: the padding must be a whole number >= 0", item));
    return {AugmentOp::Kind::kCrop, pad};
  }
  if (name == "flip") {
    if (!arg.empty())
      throw UserError(fmt::format("--augment {}: flip takes no parameter", item));
    return {AugmentOp::Kind::kFlip, 0};
  }
  if (name == "resized-crop") {
    const double min_scale = arg.empty() ? 0.08 : value;
    if (!(min_scale > 0 && min_scale <= 1))
      throw UserError(fmt::format("--augment {}: the smallest scale must be in (0, 1]", item));
    return {AugmentOp::Kind::kResizedCrop, min_scale};
  }
  throw UserError(fmt::format("--augment: unknown augmentation '{}' (crop[:PAD], flip, "
                              "resized-crop[:MIN])",
                              name));
}

// RandomCrop with padding: the image shifted by (dy, dx) in [-pad, pad], zeros shifted in.
void crop(float *x, int64_t c, int64_t h, int64_t w, int64_t pad, SampleRng &rng,
          std::vector<float> &scratch) {
  const int64_t dy = rng.integer(0, 2 * pad) - pad, dx = rng.integer(0, 2 * pad) - pad;
  scratch.assign(x, x + c * h * w);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t si = i + dy, sj = j + dx;
        x[(ch * h + i) * w + j] =
            si >= 0 && si < h && sj >= 0 && sj < w ? scratch[(ch * h + si) * w + sj] : 0.0f;
      }
}

void flip(float *x, int64_t c, int64_t h, int64_t w, SampleRng &rng) {
  if (rng.uniform() >= 0.5)
    return;
  for (int64_t row = 0; row < c * h; ++row)
    std::reverse(x + row * w, x + (row + 1) * w);
}

struct Box {
  int64_t top, left, height, width;
};

// torchvision's RandomResizedCrop.get_params: 10 tries at a random area and aspect ratio, else
// the central crop at the nearest allowed ratio.
Box resized_crop_box(int64_t h, int64_t w, double min_scale, SampleRng &rng) {
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (min_scale + (1.0 - min_scale) * rng.uniform());
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * rng.uniform());
    const auto cw = static_cast<int64_t>(std::lround(std::sqrt(target * ratio)));
    const auto ch = static_cast<int64_t>(std::lround(std::sqrt(target / ratio)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h)
      return {rng.integer(0, h - ch), rng.integer(0, w - cw), ch, cw};
  }
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < 3.0 / 4.0)
    ch = static_cast<int64_t>(std::lround(static_cast<double>(w) / (3.0 / 4.0)));
  else if (in_ratio > 4.0 / 3.0)
    cw = static_cast<int64_t>(std::lround(static_cast<double>(h) * (4.0 / 3.0)));
  return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

// Bilinear resize of the box to h x w, as torch's interpolate(mode="bilinear",
// align_corners=False) samples: source = (dest + 0.5) * scale - 0.5, clamped at the edges.
void resized_crop(float *x, int64_t c, int64_t h, int64_t w, double min_scale, SampleRng &rng,
                  std::vector<float> &scratch) {
  const Box b = resized_crop_box(h, w, min_scale, rng);
  scratch.assign(x, x + c * h * w);
  const double sy = static_cast<double>(b.height) / static_cast<double>(h);
  const double sx = static_cast<double>(b.width) / static_cast<double>(w);
  for (int64_t i = 0; i < h; ++i) {
    const double fy = std::max(0.0, (static_cast<double>(i) + 0.5) * sy - 0.5);
    const auto y0 = std::min(static_cast<int64_t>(fy), b.height - 1);
    const int64_t y1 = std::min(y0 + 1, b.height - 1);
    const double wy = fy - static_cast<double>(y0);
    for (int64_t j = 0; j < w; ++j) {
      const double fx = std::max(0.0, (static_cast<double>(j) + 0.5) * sx - 0.5);
      const auto x0 = std::min(static_cast<int64_t>(fx), b.width - 1);
      const int64_t x1 = std::min(x0 + 1, b.width - 1);
      const double wx = fx - static_cast<double>(x0);
      for (int64_t ch = 0; ch < c; ++ch) {
        auto at = [&](int64_t y, int64_t xx) {
          return static_cast<double>(scratch[(ch * h + b.top + y) * w + b.left + xx]);
        };
        const double top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
        const double bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
        x[(ch * h + i) * w + j] = static_cast<float>(top * (1 - wy) + bottom * wy);
      }
    }
  }
}

} // namespace

std::vector<AugmentOp> parse_augment(const std::string &text) {
  std::vector<AugmentOp> ops;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ','))
    if (!item.empty())
      ops.push_back(parse_one(item));
  return ops;
}

void check_augment(const std::vector<AugmentOp> &ops, const DatasetMeta &meta) {
  if (ops.empty())
    return;
  if (meta.sample_shape.size() < 2)
    throw UserError(fmt::format("--augment needs images; {} holds feature vectors of {}", meta.path,
                                meta.shape_string()));
  for (const AugmentOp &op : ops)
    if (op.kind == AugmentOp::Kind::kCrop &&
        2 * op.param > static_cast<double>(std::min(meta.height, meta.width)))
      throw UserError(fmt::format("--augment crop:{}: a padding of {} is more than half the "
                                  "{}x{} image",
                                  op.param, op.param, meta.height, meta.width));
}

SampleRng::SampleRng(uint64_t seed, int64_t epoch, int64_t index)
    : state_(seed * 0xd1342543de82ef95ULL) {
  state_ ^= splitmix64(state_) + static_cast<uint64_t>(epoch) * 0x9e3779b97f4a7c15ULL;
  state_ ^= splitmix64(state_) + static_cast<uint64_t>(index) * 0xbf58476d1ce4e5b9ULL;
  splitmix64(state_);
}

double SampleRng::uniform() { return static_cast<double>(splitmix64(state_) >> 11) * 0x1.0p-53; }

int64_t SampleRng::integer(int64_t lo, int64_t hi) {
  const auto span = static_cast<uint64_t>(hi - lo) + 1;
  // Multiply-shift; a bias of at most span / 2^64, far below anything that could matter here.
  const auto r =
      static_cast<uint64_t>((static_cast<unsigned __int128>(splitmix64(state_)) * span) >> 64);
  return lo + static_cast<int64_t>(r);
}

void augment_sample(float *sample, int64_t channels, int64_t height, int64_t width,
                    const std::vector<AugmentOp> &ops, SampleRng &rng,
                    std::vector<float> &scratch) {
  for (const AugmentOp &op : ops) {
    switch (op.kind) {
    case AugmentOp::Kind::kCrop:
      crop(sample, channels, height, width, static_cast<int64_t>(op.param), rng, scratch);
      break;
    case AugmentOp::Kind::kFlip:
      flip(sample, channels, height, width, rng);
      break;
    case AugmentOp::Kind::kResizedCrop:
      resized_crop(sample, channels, height, width, op.param, rng, scratch);
      break;
    }
  }
}

} // namespace hetrain
