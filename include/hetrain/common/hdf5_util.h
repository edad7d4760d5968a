// Small RAII layer over the HDF5 C API, shared by datasets (data/) and checkpoints (checkpoint/).
// Every call goes through CHECK_HDF5; files that are not HDF5 or lack an expected object become a
// UserError that names the file and the object.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain::h5 {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle &&other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle &operator=(Handle &&other) noexcept;
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  void reset();

private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

Handle create_file(const std::string &path);
// An HDF5 file built in memory (the core driver, no backing store), written out afterwards by
// write_file_image(). Output files are made this way so that a full disk or a failed write is an
// ordinary errno, reported as a UserError: with a file on disk, HDF5 1.10 keeps a file whose
// H5Fclose failed in its tables and crashes flushing it again at exit (seen on a full tmpfs).
Handle create_memory_file();
// Flushes `file` and writes its image to `path` (truncated); throws UserError naming
// `name_for_errors` and the system's reason ("No space left on device") when that fails.
void write_file_image(hid_t file, const std::string &path, const std::string &name_for_errors);
// Throws UserError("<path>: no such file" / "is not an HDF5 file") instead of a library error.
Handle open_file_readonly(const std::string &path);
// The same for a file's bytes already in memory (the core driver reads a copy of `image`): the fuzz
// targets read checkpoints and datasets this way. `name` is for messages.
Handle open_file_image(const std::vector<uint8_t> &image, const std::string &name);
Handle create_group(hid_t loc, const std::string &name);
Handle open_group(hid_t loc, const std::string &name, const std::string &file_for_errors);
Handle open_dataset(hid_t loc, const std::string &name, const std::string &file_for_errors);
// True when every component of the slash-separated path exists below loc.
bool exists(hid_t loc, const std::string &path);
// Names of the links directly below a group, in creation order where tracked, else by name.
std::vector<std::string> list_children(hid_t group);

bool has_attr(hid_t loc, const std::string &name);
void write_attr(hid_t loc, const std::string &name, const std::string &value);
void write_attr(hid_t loc, const std::string &name, const char *value);
void write_attr(hid_t loc, const std::string &name, int64_t value);
void write_attr(hid_t loc, const std::string &name, double value);
void write_attr(hid_t loc, const std::string &name, const std::vector<std::string> &values);
void write_attr(hid_t loc, const std::string &name, const std::vector<double> &values);
std::string read_attr_string(hid_t loc, const std::string &name);
int64_t read_attr_int(hid_t loc, const std::string &name);
double read_attr_double(hid_t loc, const std::string &name);
std::vector<std::string> read_attr_strings(hid_t loc, const std::string &name);
std::vector<double> read_attr_doubles(hid_t loc, const std::string &name);

// Element kinds we store; maps to native (memory) and little-endian (file) HDF5 types.
enum class Kind { U8, I32, I64, F32, F64 };
hid_t native_type(Kind kind);
hid_t file_type(Kind kind);
size_t kind_size(Kind kind);

void write_dataset(hid_t loc, const std::string &name, Kind kind, const void *data,
                   const std::vector<hsize_t> &dims);

struct DatasetShape {
  std::vector<hsize_t> dims;
  H5T_class_t type_class = H5T_NO_CLASS;
  size_t type_size = 0;
  bool is_signed = false;
  hsize_t elements() const;
};
DatasetShape dataset_shape(hid_t dataset);
// Reads the whole dataset, converting to the given kind.
void read_dataset(hid_t dataset, Kind kind, void *out);
// Variable-length string dataset (1-D), e.g. JSON records.
void write_string_dataset(hid_t loc, const std::string &name, const std::vector<std::string> &rows);
std::vector<std::string> read_string_dataset(hid_t loc, const std::string &name);

} // namespace hetrain::h5
