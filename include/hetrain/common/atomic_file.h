// Output files appear whole or not at all: we write to a temporary name beside the target and
// rename it into place (rename is atomic within a directory). If anything throws before
// commit(), the destructor removes the temporary, so bad input never leaves a partial file.
#pragma once

#include <string>

namespace hetrain {

class AtomicOutputFile {
public:
  // Checks that the target's directory exists and is writable; throws UserError naming it.
  explicit AtomicOutputFile(std::string final_path);
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile &) = delete;
  AtomicOutputFile &operator=(const AtomicOutputFile &) = delete;

  const std::string &temp_path() const { return temp_path_; }
  const std::string &final_path() const { return final_path_; }
  // Flushes the temporary to disk and renames it to the final path.
  void commit();

private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Writes a small text file atomically (summaries, Prometheus textfiles).
void write_text_file_atomically(const std::string &path, const std::string &text);

} // namespace hetrain
