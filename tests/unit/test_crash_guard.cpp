// common/crash_guard.h: a read that crashes, hangs or throws in the forked copy, and what the
// caller sees; and the parser fixes the fuzz targets led to (fuzz/README.md), as unit tests.
#include "hetrain/comm/messages.h"
#include "hetrain/common/crash_guard.h"
#include "hetrain/common/error.h"
#include "hetrain/observe/timeline.h"

#include <gtest/gtest.h>

#include <csignal>
#include <stdexcept>
#include <thread>

using namespace hetrain;

namespace {
std::string refusal(const std::function<void()> &read) {
  try {
    check_read_survives("file.h5", read);
  } catch (const UserError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST(CrashGuard, AReadThatSucceedsOrThrowsIsLeftToTheCaller) {
  int calls = 0;
  EXPECT_EQ(refusal([&] { ++calls; }), "");
  EXPECT_EQ(calls, 0); // it ran in the child: the parent's copy of `calls` is untouched
  EXPECT_EQ(refusal([] { throw UserError("bad attribute"); }), "");
  EXPECT_EQ(refusal([] { throw std::bad_alloc(); }), "");
}

TEST(CrashGuard, AReadThatCrashesIsRefusedNamingTheFile) {
  const std::string why = refusal([] { std::raise(SIGSEGV); });
  EXPECT_NE(why.find("file.h5: damaged file: reading it crashed the HDF5 library (signal 11"),
            std::string::npos)
      << why;
  EXPECT_NE(refusal([] { std::abort(); }).find("signal 6"), std::string::npos);
  EXPECT_NE(refusal([] { std::_Exit(7); }).find("ended with status 7"), std::string::npos);
}

TEST(CrashGuard, AReadThatHangsIsRefusedAfterTheTimeout) {
  set_read_check_timeout(0.5);
  const auto start = std::chrono::steady_clock::now();
  const std::string why = refusal([] { std::this_thread::sleep_for(std::chrono::seconds(30)); });
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  set_read_check_timeout(300);
  EXPECT_NE(why.find("did not finish within 0 s"), std::string::npos) << why; // {:.0f} of 0.5
  EXPECT_LT(took.count(), 10.0);
}

// fuzz/corpus/messages/crash-timeline-round-out-of-range: -3e231 as a span's round.
TEST(FuzzRegressions, TimelineSpansOutOfRangeAreRefusedWhole) {
  Timeline timeline;
  EXPECT_THROW(timeline.add_encoded(1, {0, 10, 5, 1, 0, 20, 5, -3e231}), std::invalid_argument);
  EXPECT_THROW(timeline.add_encoded(1, {std::nan(""), 10, 5, 1}), std::invalid_argument);
  EXPECT_THROW(timeline.add_encoded(1, {1.5, 10, 5, 1}), std::invalid_argument);
  EXPECT_EQ(timeline.size(), 0u); // nothing of a refused array is kept
  timeline.add_encoded(1, {0, 10, 5, 1});
  EXPECT_EQ(timeline.size(), 1u);
}

// fuzz/corpus/messages/crash-shard-setup-trainer-count-overflow: 2 * trainers overflowed.
TEST(FuzzRegressions, ShardSetupWithAHugeTrainerCountIsAProtocolError) {
  ShardSetup setup;
  setup.job_ranks = {1};
  setup.world_ranks = {1};
  Words words = encode(setup, 2);
  words[2] = int64_t{5211790681659408386};
  EXPECT_THROW(decode_shard_setup(words), ProtocolError);
}
