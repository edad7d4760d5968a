// Reading a damaged file must end in a UserError, but HDF5 1.10 (Debian 12's) does not check all
// it reads: a file with a corrupt global-heap object or data address makes it copy past its
// buffers or from address 0 (found by fuzz/fuzz_checkpoint.cpp and fuzz/fuzz_dataset.cpp), and no
// API call can tell such a file apart beforehand. So a read of a file from outside runs first in
// a forked copy of the process: if that copy crashes or hangs, the file is refused with a
// UserError and the process itself never reads it; if it ends normally (with success or an
// exception), the caller reads for real and gets the same outcome, without a crash.
#pragma once

#include <functional>
#include <string>

namespace hetrain {

// Runs `read` in a child process. Throws UserError("<name>: damaged file: ...") when the child
// is killed by a signal, exits abnormally or takes longer than the read-check timeout (HDF5 1.10
// also loops forever on some damage); returns normally otherwise. The child's output is discarded.
void check_read_survives(const std::string &name, const std::function<void()> &read);

// The read-check timeout for this process: 300 s (a checkpoint of many GB on a slow disk), the
// fuzz targets set a few seconds.
void set_read_check_timeout(double seconds);

} // namespace hetrain
