// Import of an image folder in torchvision's ImageFolder layout: DIR/<class>/.../<image>, one
// subfolder per class. JPEG, PNG and BMP files are decoded and resized with OpenCV on several
// threads into uint8 [N, C, H, W]; the result does not depend on the thread count.
//
//   classes   the subfolders of DIR, sorted by name (byte order); a class's index is its position.
//             Hidden entries (names starting with '.') are skipped. Each class folder is walked
//             recursively; its images are taken in sorted order of their relative paths.
//   images    files named *.jpg, *.jpeg, *.png, *.bmp (any case); other files are ignored and
//             counted. The content must be JPEG, PNG or BMP (checked before OpenCV sees it).
//   decoding  cv::imread, IMREAD_GRAYSCALE for 1 channel, IMREAD_COLOR (BGR, turned into RGB)
//             for 3; then cv::resize to exactly HxW (no aspect-ratio keeping), INTER_AREA when
//             neither side grows, INTER_LINEAR otherwise.
//   split     --val-fraction F: per class, the round(F * n) readable images whose FNV-1a hash of
//             the relative path ("class/file.jpg") is smallest go to the validation set, at most
//             n - 1 so that every class keeps a training image. Deterministic, independent of
//             the file order, and an image keeps its side when other images are added.
#pragma once

#include "hetrain/data/image_set.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

struct ImageFolderOptions {
  std::string dir;
  int64_t height = 0, width = 0;
  int64_t channels = 3;         // 1 (grayscale) or 3 (RGB)
  double val_fraction = 0.0;    // 0 <= F < 1; 0: no validation set
  bool skip_bad_images = false; // else the first unreadable image (in sorted order) is an error
  int threads = 0;              // decoding threads; 0: usable_cores()
  bool progress = false;        // progress on stderr: a bar on a terminal, else a line per 10%
};

struct ImageFolderData {
  ImageSet train, val;              // val.count == 0 without --val-fraction
  std::vector<std::string> skipped; // "DIR/class/file.jpg: why", in order (skip_bad_images)
  int64_t ignored = 0;              // files that are not images by their names
};

// "HxW" (e.g. "32x32", "224X224"): both sides 1..4096. Throws UserError otherwise.
void parse_image_size(const std::string &text, int64_t &height, int64_t &width);

// "DIR/file-val.h5" for "DIR/file.h5" (or "DIR/file-val" + the extension it has).
std::string default_val_path(const std::string &out_path);

// Lists, checks and decodes the folder. Throws UserError for bad options, a missing folder, fewer
// than 2 classes, an empty class folder, or (without skip_bad_images) an unreadable image.
ImageFolderData read_image_folder(const ImageFolderOptions &options);

// read_image_folder, then write_dataset_file for the training set (and the validation set when
// val_fraction > 0). Each file appears only complete. Returns the summary line:
// "wrote F.h5: N samples of CxHxW, K classes (M skipped, I ignored); wrote V.h5: ...".
std::string import_image_folder(const ImageFolderOptions &options, const std::string &out_path,
                                std::string val_path = "");

} // namespace hetrain
