// image_decode.h with OpenCV: imdecode (the decoders and EXIF handling of cv::imread) and resize.
#include "image_decode.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <new>

#include <fmt/format.h>

namespace hetrain {

const bool kHaveImageDecoder = true;

void prepare_decoder_threads() {
  cv::setNumThreads(0);
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
}

std::string decode_pixels(const std::vector<uint8_t> &bytes, const std::string &format,
                          int64_t channels, int64_t height, int64_t width, uint8_t *out) {
  cv::Mat image;
  try {
    // imdecode on the bytes just checked: the decoders and EXIF handling of cv::imread.
    const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U,
                      const_cast<uint8_t *>(bytes.data()));
    image = cv::imdecode(raw, channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (image.empty())
      return fmt::format("OpenCV cannot decode it (corrupt or truncated {})", format);
    const int want = channels == 1 ? CV_8UC1 : CV_8UC3;
    if (image.type() != want)
      return fmt::format("OpenCV decoded it as type {}, not 8-bit", image.type());
    if (image.rows != height || image.cols != width) {
      const bool grows = height > image.rows || width > image.cols;
      cv::Mat resized;
      cv::resize(image, resized, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0,
                 grows ? cv::INTER_LINEAR : cv::INTER_AREA);
      image = resized;
    }
  } catch (const cv::Exception &e) {
    return fmt::format("OpenCV cannot decode it ({})", e.err);
  } catch (const std::bad_alloc &) {
    return "out of memory decoding it";
  }
  // HWC (BGR for colour) to CHW (RGB).
  const int64_t plane = height * width, c_count = channels;
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t *row = image.ptr<uint8_t>(static_cast<int>(y));
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < c_count; ++c)
        out[c * plane + y * width + x] = row[x * c_count + (c_count - 1 - c)];
  }
  return "";
}

} // namespace hetrain
