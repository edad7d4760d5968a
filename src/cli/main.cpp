#include "hetrain/cli/cli.h"

#include <malloc.h>

int main(int argc, char **argv) {
  // LibTorch frees and re-allocates the same large activation and im2col buffers at every
  // micro-batch. With glibc's defaults those go back to the kernel (mmap / heap trim) and are
  // page-faulted in again each time: on a 2-core VM that costs a third of a cnn epoch (1497
  // samples/s with glibc's defaults, 2307 with these, bench/compare-pytorch.sh). Keep freed memory
  // in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return hetrain::run_cli(argc, argv);
}
