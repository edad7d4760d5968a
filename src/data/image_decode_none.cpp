// image_decode.h without OpenCV: `data import-images` refuses before it reads anything
// (image_folder.cpp's check_options), so these are never reached.
#include "image_decode.h"

namespace hetrain {

const bool kHaveImageDecoder = false;

void prepare_decoder_threads() {}

std::string decode_pixels(const std::vector<uint8_t> &, const std::string &, int64_t, int64_t,
                          int64_t, uint8_t *) {
  return "this hetrain was built without OpenCV";
}

} // namespace hetrain
