#include "wire_encoder.h"

namespace hetrain::run {

WireEncoder::WireEncoder(const protocol::WireFormat &wire, int64_t numel, bool measure_16bit)
    : wire_(wire), numel_(numel), measure_16bit_(measure_16bit) {
  if (!wire_.int8)
    return;
  values_ = torch::zeros({numel}, torch::kInt8);
  scales_ = torch::zeros({int8_blocks(numel)});
  residual_ = torch::zeros({numel});
  residual_before_ = torch::zeros({numel});
}

torch::Tensor WireEncoder::encode(const torch::Tensor &upload, const RoundCommand &command) {
  error_ = -1;
  if (wire_.int8)
    return encode_int8(upload, command);
  if (wire_.dtype == torch::kFloat32)
    return upload;
  torch::Tensor out = upload.to(wire_.dtype).contiguous();
  if (measure_16bit_) {
    torch::NoGradGuard no_grad;
    const double norm = upload.norm().item<double>();
    error_ = norm > 0 ? (out.to(torch::kFloat32) - upload).norm().item<double>() / norm : 0.0;
  }
  return out;
}

torch::Tensor WireEncoder::encode_int8(const torch::Tensor &upload, const RoundCommand &command) {
  // The carried error belongs to rounds that were applied: a redone round starts from what it
  // was before the round's first attempt.
  if (command.attempt > 0 && residual_saved_at_ == command.global_step) {
    residual_.copy_(residual_before_);
  } else {
    residual_before_.copy_(residual_);
    residual_saved_at_ = command.global_step;
  }
  const torch::Tensor host = upload.device().is_cpu() ? upload.contiguous() : upload.cpu();
  error_ = quantize_with_feedback(host.data_ptr<float>(), residual_.data_ptr<float>(), numel_,
                                  values_.data_ptr<int8_t>(), scales_.data_ptr<float>());
  return values_;
}

const float *WireEncoder::scales_of(const Piece &p) const {
  if (!wire_.int8)
    return nullptr;
  return scales_.data_ptr<float>() + first_int8_block(p);
}

} // namespace hetrain::run
