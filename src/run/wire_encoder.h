// What a trainer's upload becomes on the wire (--wire-dtype, DESIGN §4): the tensor itself
// (fp32), a 16-bit copy on the device that computed it, or int8 values and block scales in host
// memory with error feedback (aggregate/int8_codec.h). Internal to src/run.
//
//   WireEncoder encoder(wire, numel, measure);
//   torch::Tensor out = encoder.encode(upload, command);   then send piece p of `out` with
//   encoder.scales_of(p)                                    (int8: its scales go first)
#pragma once

#include "hetrain/aggregate/int8_codec.h"
#include "hetrain/comm/messages.h"

#include "protocol.h"

#include <torch/torch.h>

namespace hetrain::run {

class WireEncoder {
public:
  // `measure_16bit`: also measure the rounding error of a 16-bit upload (one more pass over it;
  // done where uploads are rare, --sync params/diloco).
  WireEncoder(const protocol::WireFormat &wire, int64_t numel, bool measure_16bit);
  // `upload` (fp32, contiguous) in the wire format. A round redone after a lost trainer
  // (command.attempt > 0) first takes back the error feedback of its earlier attempt, which was
  // never applied.
  torch::Tensor encode(const torch::Tensor &upload, const RoundCommand &command);
  // int8: the scales of piece p of the last encode; nullptr otherwise.
  const float *scales_of(const Piece &p) const;
  // int8 results are host memory, whatever device the upload was on.
  bool on_host() const { return wire_.int8; }
  // Relative L2 error of the last encode's values against what was to be sent (the upload,
  // plus the carried error with int8); -1 where not measured (fp32, 16-bit unless measured).
  double relative_error() const { return error_; }
  // int8: the rounding error carried into the next upload, saved and restored with the trainer's
  // optimizer (trainer_optimizers.h); nullptr for other dtypes.
  torch::Tensor *residual() { return wire_.int8 ? &residual_ : nullptr; }

private:
  torch::Tensor encode_int8(const torch::Tensor &upload, const RoundCommand &command);

  protocol::WireFormat wire_;
  int64_t numel_;
  bool measure_16bit_;
  double error_ = -1;
  // int8 only
  torch::Tensor values_, scales_, residual_, residual_before_;
  int64_t residual_saved_at_ = -1; // global_step of the round residual_before_ was saved for
};

} // namespace hetrain::run
