#include "trainer_roster.h"

#include <stdexcept>

namespace hetrain::run {

const TrainerState &trainer_at(const Roster &trainers, int job_rank) {
  for (const TrainerState &t : trainers)
    if (t.job_rank == job_rank)
      return t;
  throw std::logic_error(fmt::format("no trainer has job rank {}", job_rank));
}

int64_t share_in(const Plan &plan, int job_rank) {
  for (size_t p = 0; p < plan.ranks.size(); ++p)
    if (plan.ranks[p] == job_rank)
      return plan.micro_batches[p];
  return 0;
}

std::string plan_text(const Plan &plan, const Roster &trainers, int64_t micro_batch) {
  std::string text;
  for (size_t i = 0; i < plan.ranks.size(); ++i) {
    const TrainerState &t = trainer_at(trainers, plan.ranks[i]);
    text += fmt::format("{}rank {} ({}) {} x {}", i ? ", " : "", t.world_rank, t.report.host,
                        plan.micro_batches[i], micro_batch);
  }
  return text + fmt::format("; estimated round {:.3f} s", plan.estimated_round_seconds);
}

std::string late_text(const Roster &trainers, const std::vector<int> &world_ranks, bool leading) {
  std::string text;
  for (int r : world_ranks)
    for (const TrainerState &t : trainers)
      if (t.world_rank == r)
        text += fmt::format("{}rank {} ({}, last completed round {})", text.empty() ? "" : ", ", r,
                            t.report.host, t.last_round);
  if (text.empty())
    return std::string();
  return leading ? " while waiting for " + text : text;
}

} // namespace hetrain::run
