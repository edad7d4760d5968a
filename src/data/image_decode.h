// Decoding one image file's bytes into [C, H, W] uint8, resized to the requested size: the only
// part of `data import-images` that needs OpenCV. A build without OpenCV links
// image_decode_none.cpp instead, and the command says so (kHaveImageDecoder) before it reads
// anything, so the rest of hetrain builds and runs where OpenCV is missing (a GPU machine that
// only has PyTorch, say).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

extern const bool kHaveImageDecoder;

// Once before the decoding threads start: OpenCV's own threads and log off (the workers are the
// parallelism; hetrain names each bad file itself).
void prepare_decoder_threads();

// `bytes` were checked to be a `format` (PNG/JPEG/...) file. Returns the problem, or "".
std::string decode_pixels(const std::vector<uint8_t> &bytes, const std::string &format,
                          int64_t channels, int64_t height, int64_t width, uint8_t *out);

} // namespace hetrain
