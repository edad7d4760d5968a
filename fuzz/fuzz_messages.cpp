// Every message one rank decodes from another (DESIGN §7): the six typed control messages, the
// trainer's report (admission) and the timeline spans a trainer sends at the end. A decoder must
// refuse what is not its message (ProtocolError for the control messages, UserError for a report,
// std::invalid_argument for spans, as documented in their headers) and never misread it; what it
// accepts must encode back to a message that decodes to the same thing.
// Input: u8 which (n % 8), then the message: 64-bit little-endian words for the control messages,
// bytes for a report, doubles for spans.
#include "fuzz_support.h"

#include "hetrain/cluster/report_message.h"
#include "hetrain/comm/messages.h"
#include "hetrain/observe/timeline.h"

#include <cstring>
#include <stdexcept>

using namespace hetrain;

namespace {

template <class T> std::vector<T> as(const std::vector<uint8_t> &bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

// decode, then encode and decode again: the second encoding must equal the first.
template <class Decode, class Encode>
void round_trip(const Words &words, Decode decode, Encode encode) {
  try {
    const Words once = encode(decode(words));
    if (once.size() != words.size() || encode(decode(once)) != once)
      __builtin_trap();
  } catch (const ProtocolError &) {
  }
}

void report(const std::vector<uint8_t> &bytes) {
  fuzz::expect_user_error_or_success([&] {
    const std::vector<uint8_t> once = encode_report(decode_report(bytes));
    if (once.size() != bytes.size() || encode_report(decode_report(once)) != once)
      __builtin_trap();
  });
}

void spans(const std::vector<double> &encoded) {
  Timeline timeline;
  try {
    timeline.add_encoded(1, encoded);
  } catch (const std::invalid_argument &) {
    return;
  }
  if (timeline.size() * 4 != encoded.size())
    __builtin_trap();
  (void)timeline.to_json({"rank 0", "rank 1"});
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Bytes in(data, size);
  const int which = in.u8() % 8;
  const std::vector<uint8_t> bytes = in.rest();
  const Words words = as<int64_t>(bytes);
  switch (which) {
  case 0:
    round_trip(words, decode_round_command, [](const RoundCommand &m) { return encode(m); });
    break;
  case 1:
    round_trip(words, decode_round_stats, [](const RoundStats &m) { return encode(m); });
    break;
  case 2:
    round_trip(words, decode_shard_setup, [&](const ShardSetup &m) {
      return encode(m, static_cast<int>((words.size() - 3) / 2)); // the length it came with
    });
    break;
  case 3:
    round_trip(words, decode_shard_command,
               [](const ShardCommand &m) { return encode(m, m.uploading.size()); });
    break;
  case 4:
    round_trip(words, decode_shard_ack, [](const ShardAck &m) { return encode(m); });
    break;
  case 5:
    round_trip(words, decode_verdict, [](const VerdictMessage &m) { return encode(m); });
    break;
  case 6:
    report(bytes);
    break;
  default:
    spans(as<double>(bytes));
  }
  return 0;
}
