// --host-reduce (DESIGN §6): trainers on one host first sum their gradient sums there, and one of
// them, the host's leader, uploads the host's sum, so that the aggregators receive one upload per
// host instead of one per trainer. This file holds the pure decisions every rank makes alike:
// the groups (from each job rank's host), the member mask a leader's round command carries, and
// which trainers upload in a round. The transfers are in src/run.
#pragma once

#include "hetrain/config/choices.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// One host's trainers that reduce together: job ranks, the leader the lowest of them.
struct HostGroup {
  int host = 0;             // the host's id: the lowest job rank on it (aggregators included)
  int leader = 0;           // uploads the group's sum
  std::vector<int> members; // the others, ascending; each sends its sum to the leader
};

// A round command carries a leader's working members as bits: at most this many members a group.
inline constexpr size_t kMaxGroupMembers = 63;

struct HostGrouping {
  std::vector<HostGroup> groups;
  std::string off_reason; // --host-reduce auto found nothing to group: why (for one log line)
};

// The groups of a job: `host_of[r]` is the host id of job rank r; job ranks 0..first_trainer-1
// are the aggregators, the rest trainers. off: none. on: every host with >= 2 trainers. auto:
// those of them with an aggregator rank on another host (only then does it save network bytes).
// A host with more than kMaxGroupMembers + 1 trainers is split into groups of that size.
HostGrouping host_groups(const std::vector<int> &host_of, int first_trainer, HostReduce mode);

// Bit i set: the group's member i works this round. `working[j]`: trainer j (job rank
// first_trainer + j) has samples in the round.
uint64_t member_mask(const HostGroup &group, const std::vector<bool> &working, int first_trainer);

// The members (job ranks) a mask names.
std::vector<int> working_members(const HostGroup &group, uint64_t mask);

// Per trainer (index j = job rank - first_trainer): it uploads this round. A trainer outside any
// group uploads when it works; a member never; a leader when it or any of its members works.
std::vector<bool> uploaders(const std::vector<HostGroup> &groups, const std::vector<bool> &working,
                            int first_trainer);

// The group a trainer (job rank) belongs to, as leader or member; null when it is in none.
const HostGroup *group_of(const std::vector<HostGroup> &groups, int job_rank);

} // namespace hetrain
