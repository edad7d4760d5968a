// `hetrain data import-images`: the ImageFolder walk, the content checks before OpenCV sees a
// file, OpenCV's decoding and resizing, and the validation split.
// Input: u8 options (bit 0: 1 channel, else 3; bit 1: --skip-bad-images; bit 2: --val-fraction
// 0.5), u8 height and u8 width (1 + n % 16), then files until the input ends, each: u8 class
// folder (n % 3: "a", "b" or "c/deeper"), u8 name (n % 6: .png .jpg .jpeg .bmp .PNG .txt), u16
// length, the bytes.
#include "fuzz_support.h"

#include "hetrain/data/image_folder.h"

using namespace hetrain;

namespace {
const char *const kFolders[] = {"a", "b", "c/deeper"};
const char *const kExtensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".PNG", ".txt"};
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes in(data, size);
  const uint8_t flags = in.u8();
  ImageFolderOptions options;
  options.height = 1 + in.u8() % 16;
  options.width = 1 + in.u8() % 16;
  options.channels = (flags & 1) ? 1 : 3;
  options.skip_bad_images = (flags & 2) != 0;
  options.val_fraction = (flags & 4) ? 0.5 : 0.0;
  options.threads = 1;
  options.dir = fuzz::scratch_dir() + "/images";
  fuzz::reset_dir(options.dir);
  for (int i = 0; in.remaining() > 0 && i < 32; ++i) {
    const std::string folder = options.dir + "/" + kFolders[in.u8() % 3];
    const std::string name = "img" + std::to_string(i) + kExtensions[in.u8() % 6];
    const std::vector<uint8_t> bytes = in.take(in.u16());
    fuzz::reset_dir(folder + "/.keep"); // makes the folder; a hidden entry the walk skips
    fuzz::write_file(folder + "/" + name, bytes);
  }
  fuzz::expect_user_error_or_success([&] {
    const ImageFolderData d = read_image_folder(options);
    const int64_t per_image = options.channels * options.height * options.width;
    for (const ImageSet *set : {&d.train, &d.val})
      if (set->pixels.size() != static_cast<size_t>(set->count * per_image) ||
          set->labels.size() != static_cast<size_t>(set->count))
        __builtin_trap();
  });
  return 0;
}
