// --host-reduce's pure decisions (aggregate/host_groups.h): which trainers form a host's group,
// the member mask of a leader's round command, and who uploads in a round.
#include "hetrain/aggregate/host_groups.h"

#include <gtest/gtest.h>

using namespace hetrain;

TEST(HostGroups, OnGroupsEveryHostWithTwoTrainersAutoOnlyWhereAnAggregatorIsElsewhere) {
  // One machine: rank 0 and trainers 1..4 on host 0.
  const std::vector<int> one_host = {0, 0, 0, 0, 0};
  const HostGrouping on = host_groups(one_host, 1, HostReduce::kOn);
  ASSERT_EQ(on.groups.size(), 1u);
  EXPECT_EQ(on.groups[0].host, 0);
  EXPECT_EQ(on.groups[0].leader, 1);
  EXPECT_EQ(on.groups[0].members, (std::vector<int>{2, 3, 4}));
  const HostGrouping automatic = host_groups(one_host, 1, HostReduce::kAuto);
  EXPECT_TRUE(automatic.groups.empty());
  EXPECT_NE(automatic.off_reason.find("shares its host"), std::string::npos);
  EXPECT_TRUE(host_groups(one_host, 1, HostReduce::kOff).groups.empty());
  // Rank 0 alone on host 0, two trainers on each of hosts 1 and 3 (a LAN): auto groups both.
  const HostGrouping lan = host_groups({0, 1, 1, 3, 3}, 1, HostReduce::kAuto);
  ASSERT_EQ(lan.groups.size(), 2u);
  EXPECT_EQ(lan.groups[0].leader, 1);
  EXPECT_EQ(lan.groups[0].members, std::vector<int>{2});
  EXPECT_EQ(lan.groups[1].host, 3);
  EXPECT_EQ(lan.groups[1].leader, 3);
  EXPECT_EQ(lan.groups[1].members, std::vector<int>{4});
  // Rank 0 shares host 0 with trainers 1 and 2; trainers 3 and 4 on host 3: auto groups host 3
  // only (host 0's uploads never leave it), on groups both.
  const std::vector<int> mixed = {0, 0, 0, 3, 3};
  const HostGrouping mixed_auto = host_groups(mixed, 1, HostReduce::kAuto);
  ASSERT_EQ(mixed_auto.groups.size(), 1u);
  EXPECT_EQ(mixed_auto.groups[0].leader, 3);
  EXPECT_EQ(host_groups(mixed, 1, HostReduce::kOn).groups.size(), 2u);
  // Co-located shard servers (--aggregators 2, one on each host): each host has an aggregator
  // elsewhere, so auto groups both; a host with one trainer forms no group.
  const HostGrouping shards = host_groups({0, 1, 0, 1, 0, 1, 6}, 2, HostReduce::kAuto);
  ASSERT_EQ(shards.groups.size(), 2u);
  EXPECT_EQ(shards.groups[0].members, std::vector<int>{4});
  EXPECT_EQ(shards.groups[1].members, std::vector<int>{5});
  EXPECT_NE(host_groups({0, 1, 2}, 1, HostReduce::kOn).off_reason.find("no host"),
            std::string::npos);
}

TEST(HostGroups, AHostWithMoreTrainersThanAMaskHoldsIsSplit) {
  std::vector<int> host_of(1 + 70, 0); // rank 0 and 70 trainers on one host
  const HostGrouping g = host_groups(host_of, 1, HostReduce::kOn);
  ASSERT_EQ(g.groups.size(), 2u);
  EXPECT_EQ(g.groups[0].leader, 1);
  EXPECT_EQ(g.groups[0].members.size(), kMaxGroupMembers);
  EXPECT_EQ(g.groups[1].leader, 1 + static_cast<int>(kMaxGroupMembers) + 1);
  EXPECT_EQ(g.groups[1].members.size(), 70 - 2 * 1 - kMaxGroupMembers);
}

TEST(HostGroups, MaskAndUploadersFollowWhoWorks) {
  // Leader 1 with members 2, 3, 4; trainer 5 in no group (first trainer: job rank 1).
  const HostGroup g{0, 1, {2, 3, 4}};
  const std::vector<HostGroup> groups{g};
  // The leader skips, members 2 and 4 work: the leader still uploads (their sum), alone.
  std::vector<bool> working = {false, true, false, true, true};
  const uint64_t mask = member_mask(g, working, 1);
  EXPECT_EQ(mask, 0b101u);
  EXPECT_EQ(working_members(g, mask), (std::vector<int>{2, 4}));
  EXPECT_EQ(uploaders(groups, working, 1), (std::vector<bool>{true, false, false, false, true}));
  // Only the leader works: it uploads its own sum, with an empty mask.
  working = {true, false, false, false, false};
  EXPECT_EQ(member_mask(g, working, 1), 0u);
  EXPECT_EQ(uploaders(groups, working, 1), (std::vector<bool>{true, false, false, false, false}));
  // Nobody in the group works: nobody of it uploads.
  working = {false, false, false, false, true};
  EXPECT_EQ(uploaders(groups, working, 1), (std::vector<bool>{false, false, false, false, true}));
  // Without groups the uploaders are the working trainers.
  EXPECT_EQ(uploaders({}, working, 1), working);
  EXPECT_EQ(group_of(groups, 3), &groups[0]);
  EXPECT_EQ(group_of(groups, 1), &groups[0]);
  EXPECT_EQ(group_of(groups, 5), nullptr);
}
