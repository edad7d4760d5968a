// --sync-overlap (DESIGN §4 "Sync overlap"): which command continues a trainer's previous round,
// and the guess of rank 0's next command that a trainer computes on while its sync is in flight.
// Internal to src/run.
#pragma once

#include "hetrain/comm/messages.h"

#include <cstdint>
#include <optional>

namespace hetrain::run {

// True when `next` is the round right after `last` (not a redone round, not a skip, stop or
// kOut): the trainer then goes on from its own end of `last`, the sync of `last` applied when it
// lands. Anything else makes it take the master.
inline bool continues_round(const RoundCommand &last, const RoundCommand &next) {
  return next.kind == RoundCommand::Kind::kRound && next.attempt == 0 &&
         next.global_step == last.global_step + last.round_steps;
}

// Rank 0's next command when the plan stays as it is: the same share of the next round, one
// round (`global_batch` x its steps samples) further on in the epoch's order. None where that
// round would not be full (the epoch's last, shorter, or the next epoch), or after a redone
// round. A wrong guess costs only the compute spent on it.
inline std::optional<RoundCommand> guess_next_round(const RoundCommand &last, int64_t global_batch,
                                                    int64_t samples) {
  if (last.kind != RoundCommand::Kind::kRound || last.attempt != 0)
    return std::nullopt;
  RoundCommand next = last;
  next.offset = last.offset + global_batch * last.round_steps;
  next.global_step = last.global_step + last.round_steps;
  if (next.offset + next.count > samples)
    return std::nullopt;
  return next;
}

} // namespace hetrain::run
