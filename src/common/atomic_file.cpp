#include "hetrain/common/atomic_file.h"

#include "hetrain/common/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace hetrain {
namespace fs = std::filesystem;

AtomicOutputFile::AtomicOutputFile(std::string final_path) : final_path_(std::move(final_path)) {
  if (final_path_.empty())
    throw UserError("output path is empty");
  fs::path target(final_path_);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UserError(
        fmt::format("cannot write {}: directory {} does not exist", final_path_, dir.string()));
  if (access(dir.c_str(), W_OK) != 0)
    throw UserError(
        fmt::format("cannot write {}: directory {} is not writable", final_path_, dir.string()));
  if (fs::is_directory(target, ec))
    throw UserError(fmt::format("cannot write {}: it is a directory", final_path_));
  temp_path_ = fmt::format("{}.tmp-{}", final_path_, getpid());
}

AtomicOutputFile::~AtomicOutputFile() {
  if (!committed_)
    std::remove(temp_path_.c_str());
}

void AtomicOutputFile::commit() {
  // fsync so that a crash right after the rename cannot expose an empty file.
  int fd = open(temp_path_.c_str(), O_RDONLY);
  if (fd < 0)
    throw UserError(fmt::format("cannot write {}: {}", final_path_, std::strerror(errno)));
  int sync_rc = fsync(fd);
  int sync_errno = errno;
  close(fd);
  if (sync_rc != 0)
    throw UserError(fmt::format("cannot write {}: {}", final_path_, std::strerror(sync_errno)));
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    throw UserError(fmt::format("cannot write {}: {}", final_path_, std::strerror(errno)));
  committed_ = true;
}

void write_text_file_atomically(const std::string &path, const std::string &text) {
  AtomicOutputFile out(path);
  {
    std::ofstream stream(out.temp_path(), std::ios::binary | std::ios::trunc);
    stream << text;
    stream.flush();
    if (!stream)
      throw UserError(fmt::format("cannot write {}: write failed (disk full?)", path));
  }
  out.commit();
}

} // namespace hetrain
