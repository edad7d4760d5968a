#include "hetrain/data/dataset_file.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/hdf5_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace hetrain {

std::string DatasetMeta::shape_string() const {
  return fmt::format("{}x{}x{}", channels, height, width);
}

namespace {

void validate_image_set(const ImageSet &set) {
  if (set.count <= 0)
    throw UserError("dataset has zero samples");
  if (set.channels <= 0 || set.height <= 0 || set.width <= 0)
    throw UserError(fmt::format("bad image shape {}x{}x{}", set.channels, set.height, set.width));
  if (static_cast<int64_t>(set.pixels.size()) != set.count * set.channels * set.height * set.width)
    throw UserError("image data does not match count x shape");
  if (static_cast<int64_t>(set.labels.size()) != set.count)
    throw UserError(fmt::format("{} images but {} labels", set.count, set.labels.size()));
  for (int32_t label : set.labels)
    if (label < 0 || label >= static_cast<int32_t>(set.class_names.size()))
      throw UserError(
          fmt::format("label {} is outside the {} class names", label, set.class_names.size()));
}

} // namespace

void write_dataset_file(const std::string &path, const ImageSet &set) {
  validate_image_set(set);
  // Per-channel statistics of pixel/255, accumulated in double (60k x 784 sums stay exact enough).
  const int64_t plane = set.height * set.width;
  std::vector<double> mean(static_cast<size_t>(set.channels), 0.0), std(mean.size(), 0.0);
  for (int64_t c = 0; c < set.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < set.count; ++i) {
      const uint8_t *p = set.pixels.data() + (i * set.channels + c) * plane;
      for (int64_t j = 0; j < plane; ++j) {
        double v = p[j] / 255.0;
        sum += v;
        sum_sq += v * v;
      }
    }
    double n = static_cast<double>(set.count * plane);
    mean[c] = sum / n;
    std[c] = std::sqrt(std::max(sum_sq / n - mean[c] * mean[c], 1e-12));
  }

  AtomicOutputFile out(path);
  {
    h5::Handle file = h5::create_memory_file();
    h5::write_dataset(
        file, "images", h5::Kind::U8, set.pixels.data(),
        {hsize_t(set.count), hsize_t(set.channels), hsize_t(set.height), hsize_t(set.width)});
    h5::write_dataset(file, "labels", h5::Kind::I32, set.labels.data(), {hsize_t(set.count)});
    h5::write_attr(file, "format", "hetrain-dataset");
    h5::write_attr(file, "format_version", kDatasetFormatVersion);
    h5::write_attr(file, "class_names", set.class_names);
    h5::write_attr(file, "mean", mean);
    h5::write_attr(file, "std", std);
    h5::write_attr(file, "source", set.source);
    h5::write_file_image(file, out.temp_path(), path);
  }
  out.commit();
}

DatasetMeta read_dataset_meta(const std::string &path, std::vector<int64_t> *labels_out) {
  h5::Handle file = h5::open_file_readonly(path);
  DatasetMeta meta;
  meta.path = path;
  h5::Handle images = h5::open_dataset(file, "images", path);
  h5::DatasetShape ishape = h5::dataset_shape(images);
  if (ishape.dims.size() != 4)
    throw UserError(fmt::format("{}: /images must have 4 dimensions [N,C,H,W], it has {}", path,
                                ishape.dims.size()));
  if (ishape.type_class != H5T_INTEGER || ishape.type_size != 1 || ishape.is_signed)
    throw UserError(fmt::format("{}: /images must be uint8", path));
  meta.count = static_cast<int64_t>(ishape.dims[0]);
  meta.channels = static_cast<int64_t>(ishape.dims[1]);
  meta.height = static_cast<int64_t>(ishape.dims[2]);
  meta.width = static_cast<int64_t>(ishape.dims[3]);
  if (meta.count == 0)
    throw UserError(fmt::format("{}: dataset has zero samples", path));
  if (meta.channels == 0 || meta.height == 0 || meta.width == 0)
    throw UserError(fmt::format("{}: /images has an empty dimension", path));

  h5::Handle labels = h5::open_dataset(file, "labels", path);
  h5::DatasetShape lshape = h5::dataset_shape(labels);
  if (lshape.dims.size() != 1)
    throw UserError(fmt::format("{}: /labels must be one-dimensional", path));
  if (lshape.type_class != H5T_INTEGER)
    throw UserError(fmt::format("{}: /labels must be integers", path));
  if (static_cast<int64_t>(lshape.dims[0]) != meta.count)
    throw UserError(fmt::format("{}: {} images but {} labels", path, meta.count, lshape.dims[0]));

  if (h5::has_attr(file, "class_names"))
    meta.class_names = h5::read_attr_strings(file, "class_names");
  std::vector<int64_t> label_values(static_cast<size_t>(meta.count));
  h5::read_dataset(labels, h5::Kind::I64, label_values.data());
  auto [min_it, max_it] = std::minmax_element(label_values.begin(), label_values.end());
  if (*min_it < 0)
    throw UserError(fmt::format("{}: label {} is negative", path, *min_it));
  meta.num_classes =
      meta.class_names.empty() ? *max_it + 1 : static_cast<int64_t>(meta.class_names.size());
  if (*max_it >= meta.num_classes)
    throw UserError(fmt::format("{}: label {} is out of range for {} classes", path, *max_it,
                                meta.num_classes));
  if (labels_out != nullptr)
    *labels_out = std::move(label_values);
  if (meta.class_names.empty())
    for (int64_t c = 0; c < meta.num_classes; ++c)
      meta.class_names.push_back(std::to_string(c));

  if (h5::has_attr(file, "mean") && h5::has_attr(file, "std")) {
    meta.mean = h5::read_attr_doubles(file, "mean");
    meta.std = h5::read_attr_doubles(file, "std");
  } else {
    meta.mean.assign(static_cast<size_t>(meta.channels), 0.5);
    meta.std.assign(static_cast<size_t>(meta.channels), 0.5);
  }
  if (static_cast<int64_t>(meta.mean.size()) != meta.channels ||
      static_cast<int64_t>(meta.std.size()) != meta.channels)
    throw UserError(fmt::format("{}: mean/std attributes must have one value per channel ({})",
                                path, meta.channels));
  for (double s : meta.std)
    if (!(s > 0))
      throw UserError(fmt::format("{}: std attribute must be positive", path));
  if (h5::has_attr(file, "source"))
    meta.source = h5::read_attr_string(file, "source");
  return meta;
}

} // namespace hetrain
