#include "hetrain/common/check.h"

#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include <hdf5.h>

#include <fmt/format.h>

namespace hetrain::detail {

void fail_library(const char *library, const std::string &what, const char *call, const char *file,
                  int line) {
  const ProcessIdentity &id = process_identity();
  throw LibraryError(fmt::format("{} call failed on rank {} ({}): {} at {}:{}: {}", library,
                                 id.rank, id.host, call, file, line, what));
}

namespace {
// Walks HDF5's error stack and keeps the innermost (most specific) description.
herr_t keep_innermost(unsigned n, const H5E_error2_t *entry, void *client) {
  auto *out = static_cast<std::string *>(client);
  if (n == 0 && entry->desc != nullptr)
    *out = entry->desc;
  return 0;
}
} // namespace

void fail_hdf5(const char *call, const char *file, int line) {
  std::string what = "unknown HDF5 error";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &what);
  H5Eclear2(H5E_DEFAULT);
  fail_library("HDF5", what, call, file, line);
}

void quiet_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

} // namespace hetrain::detail
