#include "hetrain/aggregate/host_groups.h"

#include <algorithm>
#include <map>

namespace hetrain {

HostGrouping host_groups(const std::vector<int> &host_of, int first_trainer, HostReduce mode) {
  HostGrouping out;
  if (mode == HostReduce::kOff)
    return out;
  std::map<int, std::vector<int>> trainers_on; // host id -> trainers (job ranks, ascending)
  for (int r = first_trainer; r < static_cast<int>(host_of.size()); ++r)
    trainers_on[host_of[static_cast<size_t>(r)]].push_back(r);
  bool any_shared = false;
  for (const auto &[host, trainers] : trainers_on) {
    if (trainers.size() < 2)
      continue;
    any_shared = true;
    // auto: grouping saves bytes only where an upload would cross the host's link.
    bool aggregator_elsewhere = false;
    for (int a = 0; a < first_trainer && a < static_cast<int>(host_of.size()); ++a)
      aggregator_elsewhere = aggregator_elsewhere || host_of[static_cast<size_t>(a)] != host;
    if (mode == HostReduce::kAuto && !aggregator_elsewhere)
      continue;
    for (size_t at = 0; at + 1 < trainers.size(); at += kMaxGroupMembers + 1) {
      const size_t end = std::min(trainers.size(), at + kMaxGroupMembers + 1);
      if (end - at < 2)
        break;
      HostGroup g;
      g.host = host;
      g.leader = trainers[at];
      g.members.assign(trainers.begin() + static_cast<std::ptrdiff_t>(at) + 1,
                       trainers.begin() + static_cast<std::ptrdiff_t>(end));
      out.groups.push_back(g);
    }
  }
  if (out.groups.empty())
    out.off_reason = any_shared ? "every aggregator rank shares its host with the trainers there"
                                : "no host runs two or more trainers";
  return out;
}

uint64_t member_mask(const HostGroup &group, const std::vector<bool> &working, int first_trainer) {
  uint64_t mask = 0;
  for (size_t i = 0; i < group.members.size(); ++i) {
    const size_t j = static_cast<size_t>(group.members[i] - first_trainer);
    if (j < working.size() && working[j])
      mask |= uint64_t{1} << i;
  }
  return mask;
}

std::vector<int> working_members(const HostGroup &group, uint64_t mask) {
  std::vector<int> out;
  for (size_t i = 0; i < group.members.size(); ++i)
    if (mask >> i & 1)
      out.push_back(group.members[i]);
  return out;
}

std::vector<bool> uploaders(const std::vector<HostGroup> &groups, const std::vector<bool> &working,
                            int first_trainer) {
  std::vector<bool> out = working;
  for (const HostGroup &g : groups) {
    const size_t leader = static_cast<size_t>(g.leader - first_trainer);
    bool any = leader < working.size() && working[leader];
    for (int m : g.members) {
      const size_t j = static_cast<size_t>(m - first_trainer);
      if (j < working.size()) {
        any = any || working[j];
        out[j] = false;
      }
    }
    if (leader < out.size())
      out[leader] = any;
  }
  return out;
}

const HostGroup *group_of(const std::vector<HostGroup> &groups, int job_rank) {
  for (const HostGroup &g : groups)
    if (g.leader == job_rank ||
        std::find(g.members.begin(), g.members.end(), job_rank) != g.members.end())
      return &g;
  return nullptr;
}

} // namespace hetrain
