#include "hetrain/common/hdf5_util.h"

#include "hetrain/common/check.h"
#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

namespace hetrain::h5 {

Handle &Handle::operator=(Handle &&other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr)
    closer_(id_); // close failures during unwinding cannot be reported usefully
  id_ = -1;
}

namespace {

Handle make_vlen_string_type() {
  Handle type(CHECK_HDF5(H5Tcopy(H5T_C_S1)), H5Tclose);
  CHECK_HDF5(H5Tset_size(type, H5T_VARIABLE));
  CHECK_HDF5(H5Tset_cset(type, H5T_CSET_UTF8));
  return type;
}

Handle scalar_space() { return Handle(CHECK_HDF5(H5Screate(H5S_SCALAR)), H5Sclose); }

Handle simple_space(const std::vector<hsize_t> &dims) {
  return Handle(CHECK_HDF5(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)),
                H5Sclose);
}

Handle replace_attr(hid_t loc, const std::string &name, hid_t type, hid_t space) {
  if (CHECK_HDF5(H5Aexists(loc, name.c_str())) > 0)
    CHECK_HDF5(H5Adelete(loc, name.c_str()));
  return Handle(CHECK_HDF5(H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT)),
                H5Aclose);
}

Handle open_attr(hid_t loc, const std::string &name) {
  if (CHECK_HDF5(H5Aexists(loc, name.c_str())) <= 0)
    throw UserError(fmt::format("attribute '{}' is missing", name));
  return Handle(CHECK_HDF5(H5Aopen(loc, name.c_str(), H5P_DEFAULT)), H5Aclose);
}

// Attributes are small (class names, per-channel statistics, a config); a damaged dataspace can
// claim far more values than any file holds, which would be allocated before reading.
constexpr hssize_t kMaxAttrElements = hssize_t{1} << 24;

hssize_t attr_elements(hid_t attr) {
  Handle space(CHECK_HDF5(H5Aget_space(attr)), H5Sclose);
  const hssize_t n = CHECK_HDF5(H5Sget_simple_extent_npoints(space));
  if (n > kMaxAttrElements) {
    char name[256] = "?";
    H5Aget_name(attr, sizeof name, name);
    throw UserError(fmt::format("attribute '{}' claims {} values (damaged file)", name, n));
  }
  return n;
}

std::vector<std::string> read_vlen_strings(hid_t obj, bool is_attr, hid_t space_id) {
  // The count checked against the object first (attr_elements' cap, dataset_shape's storage).
  const hssize_t n =
      is_attr ? attr_elements(obj) : static_cast<hssize_t>(dataset_shape(obj).elements());
  Handle type = make_vlen_string_type();
  std::vector<char *> raw(static_cast<size_t>(n), nullptr);
  if (n > 0) {
    if (is_attr)
      CHECK_HDF5(H5Aread(obj, type, raw.data()));
    else
      CHECK_HDF5(H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()));
  }
  std::vector<std::string> out;
  for (char *s : raw)
    out.emplace_back(s ? s : "");
  if (n > 0)
    H5Dvlen_reclaim(type, space_id, H5P_DEFAULT, raw.data());
  return out;
}

} // namespace

Handle create_file(const std::string &path) {
  detail::quiet_hdf5_errors();
  return Handle(CHECK_HDF5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)),
                H5Fclose);
}

Handle create_memory_file() {
  detail::quiet_hdf5_errors();
  Handle fapl(CHECK_HDF5(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  CHECK_HDF5(H5Pset_fapl_core(fapl, 16 << 20, /*backing_store=*/0));
  // The name only identifies the image in HDF5's tables; nothing is written under it.
  static int serial = 0;
  const std::string name = fmt::format("hetrain-memory-file-{}", ++serial);
  return Handle(CHECK_HDF5(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl)), H5Fclose);
}

void write_file_image(hid_t file, const std::string &path, const std::string &name_for_errors) {
  CHECK_HDF5(H5Fflush(file, H5F_SCOPE_GLOBAL));
  const ssize_t size = CHECK_HDF5(H5Fget_file_image(file, nullptr, 0));
  std::vector<char> image(static_cast<size_t>(size));
  CHECK_HDF5(H5Fget_file_image(file, image.data(), image.size()));
  std::FILE *out = std::fopen(path.c_str(), "wb");
  if (!out)
    throw UserError(fmt::format("cannot write {}: {}", name_for_errors, std::strerror(errno)));
  const size_t written = std::fwrite(image.data(), 1, image.size(), out);
  int error = written == image.size() ? 0 : errno;
  if (std::fclose(out) != 0 && error == 0)
    error = errno;
  if (error != 0)
    throw UserError(fmt::format("cannot write {}: {}", name_for_errors, std::strerror(error)));
}

Handle open_file_readonly(const std::string &path) {
  detail::quiet_hdf5_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw UserError(fmt::format("{}: no such file", path));
  if (std::filesystem::is_directory(path, ec))
    throw UserError(fmt::format("{}: is a directory, not an HDF5 file", path));
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw UserError(fmt::format("{}: not an HDF5 file (or truncated)", path));
  }
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw UserError(fmt::format("{}: cannot open as HDF5 (truncated or damaged file)", path));
  }
  return Handle(id, H5Fclose);
}

Handle open_file_image(const std::vector<uint8_t> &image, const std::string &name) {
  detail::quiet_hdf5_errors();
  // Every HDF5 file starts with this signature (at offset 0 for the files hetrain and h5py
  // write); checked here so that arbitrary bytes never reach the superblock parser.
  static const uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (image.size() < 64 || std::memcmp(image.data(), kSignature, 8) != 0)
    throw UserError(fmt::format("{}: not an HDF5 file (or truncated)", name));
  Handle fapl(CHECK_HDF5(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  CHECK_HDF5(H5Pset_fapl_core(fapl, 1 << 16, /*backing_store=*/0));
  CHECK_HDF5(H5Pset_file_image(fapl, const_cast<uint8_t *>(image.data()), image.size()));
  static int serial = 0; // HDF5 refuses a second open file of the same name
  const std::string label = fmt::format("hetrain-file-image-{}", ++serial);
  hid_t id = H5Fopen(label.c_str(), H5F_ACC_RDONLY, fapl);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw UserError(fmt::format("{}: cannot open as HDF5 (truncated or damaged file)", name));
  }
  return Handle(id, H5Fclose);
}

Handle create_group(hid_t loc, const std::string &name) {
  return Handle(CHECK_HDF5(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
                H5Gclose);
}

bool exists(hid_t loc, const std::string &path) {
  std::string prefix;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty())
      continue;
    prefix += (prefix.empty() ? "" : "/") + part;
    htri_t found = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
    if (found <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

Handle open_group(hid_t loc, const std::string &name, const std::string &file_for_errors) {
  if (!exists(loc, name))
    throw UserError(fmt::format("{}: group '{}' is missing", file_for_errors, name));
  return Handle(CHECK_HDF5(H5Gopen2(loc, name.c_str(), H5P_DEFAULT)), H5Gclose);
}

Handle open_dataset(hid_t loc, const std::string &name, const std::string &file_for_errors) {
  if (!exists(loc, name))
    throw UserError(fmt::format("{}: dataset '{}' is missing", file_for_errors, name));
  hid_t id = H5Dopen2(loc, name.c_str(), H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw UserError(fmt::format("{}: '{}' is not a readable dataset", file_for_errors, name));
  }
  return Handle(id, H5Dclose);
}

std::vector<std::string> list_children(hid_t group) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char *name, const H5L_info_t *, void *data) -> herr_t {
    static_cast<std::vector<std::string> *>(data)->emplace_back(name);
    return 0;
  };
  hsize_t index = 0;
  // Creation order is only tracked when the group was created with it; fall back to names.
  if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &index, collect, &names) < 0) {
    H5Eclear2(H5E_DEFAULT);
    names.clear();
    index = 0;
    CHECK_HDF5(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names));
  }
  return names;
}

bool has_attr(hid_t loc, const std::string &name) {
  return CHECK_HDF5(H5Aexists(loc, name.c_str())) > 0;
}

void write_attr(hid_t loc, const std::string &name, const std::string &value) {
  Handle type = make_vlen_string_type();
  Handle space = scalar_space();
  Handle attr = replace_attr(loc, name, type, space);
  const char *ptr = value.c_str();
  CHECK_HDF5(H5Awrite(attr, type, &ptr));
}

void write_attr(hid_t loc, const std::string &name, const char *value) {
  write_attr(loc, name, std::string(value));
}

void write_attr(hid_t loc, const std::string &name, int64_t value) {
  Handle space = scalar_space();
  Handle attr = replace_attr(loc, name, H5T_STD_I64LE, space);
  CHECK_HDF5(H5Awrite(attr, H5T_NATIVE_INT64, &value));
}

void write_attr(hid_t loc, const std::string &name, double value) {
  Handle space = scalar_space();
  Handle attr = replace_attr(loc, name, H5T_IEEE_F64LE, space);
  CHECK_HDF5(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value));
}

void write_attr(hid_t loc, const std::string &name, const std::vector<std::string> &values) {
  Handle type = make_vlen_string_type();
  Handle space = simple_space({values.size()});
  Handle attr = replace_attr(loc, name, type, space);
  std::vector<const char *> ptrs;
  for (const auto &v : values)
    ptrs.push_back(v.c_str());
  if (!ptrs.empty())
    CHECK_HDF5(H5Awrite(attr, type, ptrs.data()));
}

void write_attr(hid_t loc, const std::string &name, const std::vector<double> &values) {
  Handle space = simple_space({values.size()});
  Handle attr = replace_attr(loc, name, H5T_IEEE_F64LE, space);
  if (!values.empty())
    CHECK_HDF5(H5Awrite(attr, H5T_NATIVE_DOUBLE, values.data()));
}

std::string read_attr_string(hid_t loc, const std::string &name) {
  Handle attr = open_attr(loc, name);
  Handle type(CHECK_HDF5(H5Aget_type(attr)), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING)
    throw UserError(fmt::format("attribute '{}' is not a string", name));
  if (CHECK_HDF5(H5Tis_variable_str(type)) > 0) {
    Handle space(CHECK_HDF5(H5Aget_space(attr)), H5Sclose);
    auto values = read_vlen_strings(attr, true, space);
    return values.empty() ? std::string() : values.front();
  }
  // Fixed-length strings (as some tools write them).
  const size_t size = H5Tget_size(type);
  if (size > static_cast<size_t>(kMaxAttrElements))
    throw UserError(
        fmt::format("attribute '{}' claims a string of {} bytes (damaged file)", name, size));
  std::string value(size, '\0');
  CHECK_HDF5(H5Aread(attr, type, value.data()));
  value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
  return value;
}

int64_t read_attr_int(hid_t loc, const std::string &name) {
  Handle attr = open_attr(loc, name);
  if (attr_elements(attr) != 1)
    throw UserError(fmt::format("attribute '{}' is not a scalar", name));
  int64_t value = 0;
  Handle type(CHECK_HDF5(H5Aget_type(attr)), H5Tclose);
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw UserError(fmt::format("attribute '{}' is not a number", name));
  CHECK_HDF5(H5Aread(attr, H5T_NATIVE_INT64, &value));
  return value;
}

double read_attr_double(hid_t loc, const std::string &name) {
  Handle attr = open_attr(loc, name);
  if (attr_elements(attr) != 1)
    throw UserError(fmt::format("attribute '{}' is not a scalar", name));
  Handle type(CHECK_HDF5(H5Aget_type(attr)), H5Tclose);
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw UserError(fmt::format("attribute '{}' is not a number", name));
  double value = 0;
  CHECK_HDF5(H5Aread(attr, H5T_NATIVE_DOUBLE, &value));
  return value;
}

std::vector<std::string> read_attr_strings(hid_t loc, const std::string &name) {
  Handle attr = open_attr(loc, name);
  Handle type(CHECK_HDF5(H5Aget_type(attr)), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING || CHECK_HDF5(H5Tis_variable_str(type)) <= 0)
    throw UserError(fmt::format("attribute '{}' is not a list of strings", name));
  Handle space(CHECK_HDF5(H5Aget_space(attr)), H5Sclose);
  return read_vlen_strings(attr, true, space);
}

std::vector<double> read_attr_doubles(hid_t loc, const std::string &name) {
  Handle attr = open_attr(loc, name);
  Handle type(CHECK_HDF5(H5Aget_type(attr)), H5Tclose);
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw UserError(fmt::format("attribute '{}' is not numeric", name));
  std::vector<double> values(static_cast<size_t>(attr_elements(attr)));
  if (!values.empty())
    CHECK_HDF5(H5Aread(attr, H5T_NATIVE_DOUBLE, values.data()));
  return values;
}

hid_t native_type(Kind kind) {
  switch (kind) {
  case Kind::U8:
    return H5T_NATIVE_UINT8;
  case Kind::I32:
    return H5T_NATIVE_INT32;
  case Kind::I64:
    return H5T_NATIVE_INT64;
  case Kind::F32:
    return H5T_NATIVE_FLOAT;
  case Kind::F64:
    return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_UINT8;
}

hid_t file_type(Kind kind) {
  switch (kind) {
  case Kind::U8:
    return H5T_STD_U8LE;
  case Kind::I32:
    return H5T_STD_I32LE;
  case Kind::I64:
    return H5T_STD_I64LE;
  case Kind::F32:
    return H5T_IEEE_F32LE;
  case Kind::F64:
    return H5T_IEEE_F64LE;
  }
  return H5T_STD_U8LE;
}

size_t kind_size(Kind kind) {
  switch (kind) {
  case Kind::U8:
    return 1;
  case Kind::I32:
  case Kind::F32:
    return 4;
  case Kind::I64:
  case Kind::F64:
    return 8;
  }
  return 1;
}

void write_dataset(hid_t loc, const std::string &name, Kind kind, const void *data,
                   const std::vector<hsize_t> &dims) {
  Handle space = simple_space(dims);
  Handle dataset(CHECK_HDF5(H5Dcreate2(loc, name.c_str(), file_type(kind), space, H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT)),
                 H5Dclose);
  hsize_t n = 1;
  for (hsize_t d : dims)
    n *= d;
  if (n > 0)
    CHECK_HDF5(H5Dwrite(dataset, native_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

hsize_t DatasetShape::elements() const {
  hsize_t n = 1;
  for (hsize_t d : dims)
    if (__builtin_mul_overflow(n, d, &n))
      return std::numeric_limits<hsize_t>::max();
  return n;
}

namespace {
// What a reader sizes its buffer by is the dataspace; a damaged one can claim 10^18 elements and
// make the reader allocate before HDF5 says anything (found by fuzz/fuzz_checkpoint.cpp). So the
// claim must be backed by the bytes the file stores for the dataset: all of them without a filter
// (as hetrain writes, and h5py by default), at least 1/1100 with one (gzip compresses 1032:1 at
// most). A dataset created but never written stores nothing and is refused too.
void require_stored(hid_t dataset, const DatasetShape &shape) {
  const hsize_t elements = shape.elements();
  hsize_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<hsize_t>(shape.type_size), &bytes))
    bytes = std::numeric_limits<hsize_t>::max();
  if (bytes == 0)
    return;
  Handle dcpl(CHECK_HDF5(H5Dget_create_plist(dataset)), H5Pclose);
  const bool filtered = CHECK_HDF5(H5Pget_nfilters(dcpl)) > 0;
  const hsize_t stored = H5Dget_storage_size(dataset);
  if (filtered ? stored >= bytes / 1100 : stored >= bytes)
    return;
  char name[256] = "?";
  H5Iget_name(dataset, name, sizeof name);
  throw UserError(fmt::format("dataset '{}' claims {} elements ({} bytes) but the file stores {} "
                              "bytes of it (damaged, or never written)",
                              name, elements, bytes, stored));
}
} // namespace

DatasetShape dataset_shape(hid_t dataset) {
  DatasetShape shape;
  Handle space(CHECK_HDF5(H5Dget_space(dataset)), H5Sclose);
  int rank = CHECK_HDF5(H5Sget_simple_extent_ndims(space));
  shape.dims.resize(static_cast<size_t>(rank));
  if (rank > 0)
    CHECK_HDF5(H5Sget_simple_extent_dims(space, shape.dims.data(), nullptr));
  Handle type(CHECK_HDF5(H5Dget_type(dataset)), H5Tclose);
  shape.type_class = H5Tget_class(type);
  shape.type_size = H5Tget_size(type);
  shape.is_signed = shape.type_class == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2;
  require_stored(dataset, shape);
  return shape;
}

void read_dataset(hid_t dataset, Kind kind, void *out) {
  if (dataset_shape(dataset).elements() == 0)
    return;
  CHECK_HDF5(H5Dread(dataset, native_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
}

void write_string_dataset(hid_t loc, const std::string &name,
                          const std::vector<std::string> &rows) {
  Handle type = make_vlen_string_type();
  Handle space = simple_space({rows.size()});
  Handle dataset(
      CHECK_HDF5(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
      H5Dclose);
  std::vector<const char *> ptrs;
  for (const auto &r : rows)
    ptrs.push_back(r.c_str());
  if (!ptrs.empty())
    CHECK_HDF5(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()));
}

std::vector<std::string> read_string_dataset(hid_t loc, const std::string &name) {
  Handle dataset = open_dataset(loc, name, "checkpoint");
  Handle space(CHECK_HDF5(H5Dget_space(dataset)), H5Sclose);
  return read_vlen_strings(dataset, false, space);
}

} // namespace hetrain::h5
