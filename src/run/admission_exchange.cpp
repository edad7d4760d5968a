#include "admission_exchange.h"

#include "hetrain/cluster/admission.h"
#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/messages.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include "clock.h"
#include "protocol.h"

#include <algorithm>
#include <thread>

namespace hetrain::run {
using namespace protocol;
namespace {

// The raw reports of world ranks first..W-1, each empty when none came within --join-timeout.
std::vector<std::vector<uint8_t>> collect_reports(const TrainConfig &config, int first,
                                                  int world_size,
                                                  std::vector<MPI_Request> &requests) {
  std::vector<std::vector<uint8_t>> raw(static_cast<size_t>(world_size - first),
                                        std::vector<uint8_t>(kReportMessageBytes + 64));
  std::vector<int> received(raw.size(), -1);
  requests.assign(raw.size(), MPI_REQUEST_NULL);
  for (size_t i = 0; i < raw.size(); ++i)
    CHECK_MPI(MPI_Irecv(raw[i].data(), static_cast<int>(raw[i].size()), MPI_BYTE,
                        static_cast<int>(i) + first, kTagReport, MPI_COMM_WORLD, &requests[i]));
  const auto join_start = Clock::now();
  while (seconds_since(join_start) < config.join_timeout &&
         std::count(received.begin(), received.end(), -1) > 0) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (received[i] >= 0)
        continue;
      int flag = 0;
      MPI_Status status;
      CHECK_MPI(MPI_Test(&requests[i], &flag, &status));
      if (flag)
        CHECK_MPI(MPI_Get_count(&status, MPI_BYTE, &received[i]));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (size_t i = 0; i < raw.size(); ++i)
    raw[i].resize(static_cast<size_t>(std::max(received[i], 0)));
  return raw;
}

// Decodes what came and decides; every rank gets a verdict (no report is one too).
std::vector<AdmissionVerdict> decide(const TrainConfig &config, int first,
                                     const std::vector<std::vector<uint8_t>> &raw,
                                     std::vector<TrainerReport> &valid) {
  std::vector<AdmissionVerdict> verdicts(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    verdicts[i].rank = static_cast<int>(i) + first;
    if (raw[i].empty()) {
      verdicts[i].reason = fmt::format("no report within --join-timeout {} s", config.join_timeout);
      continue;
    }
    try {
      TrainerReport r = decode_report(raw[i]);
      r.rank = verdicts[i].rank; // the sender is who MPI says it is
      valid.push_back(r);
    } catch (const UserError &e) {
      verdicts[i].reason = e.what();
    }
  }
  AdmissionPolicy policy{config.require_gpu, config.min_relative_speed, config.require_bf16};
  for (const AdmissionVerdict &v : decide_admission(valid, policy))
    verdicts[static_cast<size_t>(v.rank - first)] = v;
  return verdicts;
}

// The cluster table, the roster of the admitted and every report for checkpoints.
void record(const TrainConfig &config, int first, const std::vector<AdmissionVerdict> &verdicts,
            const std::vector<TrainerReport> &valid, AdmittedJob &out) {
  log_info("cluster: {} trainers reported of {}", valid.size(), verdicts.size());
  log_info("  {:>4}  {:<16} {:<28} {:>12} {:>10}  {}", "rank", "host", "device", "probe smp/s",
           "mem GiB", "verdict");
  for (const AdmissionVerdict &v : verdicts) {
    auto found = std::find_if(valid.begin(), valid.end(),
                              [&](const TrainerReport &r) { return r.rank == v.rank; });
    if (found == valid.end()) {
      log_info("  {:>4}  {:<16} {:<28} {:>12} {:>10}  rejected: {}", v.rank, "?", "?", "-", "-",
               v.reason);
    } else {
      log_info("  {:>4}  {:<16} {:<28} {:>12.0f} {:>10.1f}  {}", v.rank, found->host, found->device,
               found->probe_samples_per_sec, static_cast<double>(found->mem_available) / (1 << 30),
               v.admitted ? "admitted" : "rejected: " + v.reason);
      out.reports.push_back(nlohmann::json{{"rank", v.rank},
                                           {"host", found->host},
                                           {"pid", found->pid},
                                           {"cpu_model", found->cpu_model},
                                           {"usable_cores", found->usable_cores},
                                           {"device", found->device},
                                           {"blas", found->blas},
                                           {"probe_samples_per_sec", found->probe_samples_per_sec},
                                           {"admitted", v.admitted},
                                           {"reason", v.reason}});
    }
    if (!v.admitted) {
      log_warn("rank {} rejected: {}", v.rank, v.reason);
      continue;
    }
    TrainerState t;
    t.world_rank = v.rank;
    t.job_rank = static_cast<int>(out.trainers.size()) + first; // after rank 0 and servers
    t.report = *found;
    t.speed = found->probe_samples_per_sec;
    t.micro_batch = config.micro_batch;
    out.trainers.push_back(t);
  }
}

void send_verdicts(const TrainConfig &config, int first,
                   const std::vector<AdmissionVerdict> &verdicts) {
  std::vector<Words> messages;
  for (const AdmissionVerdict &v : verdicts)
    messages.push_back(encode(VerdictMessage{v.admitted, v.reason}));
  RequestSet set;
  for (size_t i = 0; i < messages.size(); ++i) {
    const int to = static_cast<int>(i) + first;
    isend_words(set, messages[i], to, kTagVerdict, MPI_COMM_WORLD, "sending the admission verdict");
  }
  set.wait_all(config.join_timeout);
}

} // namespace

AdmittedJob admit_trainers(const TrainConfig &config, int world_size) {
  // Trainers are world ranks A..W-1 (A = --aggregators; ranks 1..A-1 are shard servers).
  const int first = config.aggregators;
  std::vector<MPI_Request> requests;
  const std::vector<std::vector<uint8_t>> raw =
      collect_reports(config, first, world_size, requests);
  std::vector<TrainerReport> valid;
  const std::vector<AdmissionVerdict> verdicts = decide(config, first, raw, valid);
  AdmittedJob out;
  record(config, first, verdicts, valid, out);
  send_verdicts(config, first, verdicts);
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, 0, 0, &out.job));
  CHECK_MPI(MPI_Comm_set_errhandler(out.job, MPI_ERRORS_RETURN));
  for (MPI_Request &r : requests) // the reports that never came
    if (r != MPI_REQUEST_NULL)
      MPI_Cancel(&r);
  if (out.trainers.empty())
    throw UserError("no trainer was admitted (see the table above); nothing to train with");
  return out;
}

} // namespace hetrain::run
