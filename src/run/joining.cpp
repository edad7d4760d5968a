#include "joining.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/messages.h"
#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include "clock.h"
#include "protocol.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

namespace hetrain::run {
using namespace protocol;

void write_join_ticket(const std::string &path, const JoinTicket &t) {
  const nlohmann::json j{{"service", t.service},
                         {"messages", t.messages},
                         {"report_protocol", t.report_protocol},
                         {"model_fingerprint", t.model_fingerprint},
                         {"command", t.command},
                         {"host", t.host}};
  AtomicOutputFile out(path);
  std::ofstream(out.temp_path()) << j.dump(2) << '\n';
  out.commit();
}

JoinTicket read_join_ticket(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    throw UserError(fmt::format("{}: cannot read (is the job's --accept-joins file here?)", path));
  JoinTicket t;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    t.service = j.at("service").get<std::string>();
    t.messages = j.at("messages").get<int64_t>();
    t.report_protocol = j.at("report_protocol").get<uint32_t>();
    t.model_fingerprint = j.at("model_fingerprint").get<std::string>();
    t.command = j.at("command").get<std::vector<std::string>>();
    t.host = j.at("host").get<std::string>();
  } catch (const nlohmann::json::exception &e) {
    throw UserError(fmt::format("{}: not a join file of hetrain train --accept-joins ({})", path,
                                first_line(e.what())));
  }
  if (t.messages != kMessageVersion || t.report_protocol != kProtocolVersion)
    throw UserError(fmt::format("{}: the job speaks protocol {}/{}, this hetrain {}/{}: use the "
                                "job's hetrain build",
                                path, t.messages, t.report_protocol, kMessageVersion,
                                kProtocolVersion));
  return t;
}

namespace {
constexpr const char *kRunningValue = "running"; // what the "-running" name holds: not a port
std::string running_name(const std::string &service) { return service + "-running"; }
} // namespace

void publish_running(const std::string &service) {
  CHECK_MPI(MPI_Publish_name(running_name(service).c_str(), MPI_INFO_NULL, kRunningValue));
}

void unpublish_running(const std::string &service) {
  MPI_Unpublish_name(running_name(service).c_str(), MPI_INFO_NULL, kRunningValue);
}

std::optional<MPI_Comm> connect_waiting_joiner(const std::string &service) {
  char port[MPI_MAX_PORT_NAME] = {0};
  // Nothing published: MPI_ERR_NAME at once (measured 1 ms with ompi-server), not a wait.
  if (MPI_Lookup_name(service.c_str(), MPI_INFO_NULL, port) != MPI_SUCCESS)
    return std::nullopt;
  MPI_Comm inter = MPI_COMM_NULL;
  const int rc = MPI_Comm_connect(port, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter);
  if (rc != MPI_SUCCESS) { // a joiner that gave up between its publish and our connect
    log_warn("joins: a joiner published {} but could not be reached; ignored", service);
    return std::nullopt;
  }
  CHECK_MPI(MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN));
  return inter;
}

std::vector<uint8_t> receive_joiner_report(MPI_Comm inter, int rank, double timeout) {
  std::vector<uint8_t> raw(kReportMessageBytes + 64);
  MPI_Request r;
  CHECK_MPI(
      MPI_Irecv(raw.data(), static_cast<int>(raw.size()), MPI_BYTE, 0, kTagReport, inter, &r));
  // Polled rather than RequestSet::wait_all, which keeps no status: the report's length is needed.
  const auto start = Clock::now();
  int done = 0, count = 0;
  MPI_Status status;
  CHECK_MPI(MPI_Test(&r, &done, &status));
  while (!done) {
    if (seconds_since(start) > timeout) {
      MPI_Cancel(&r);
      MPI_Request_free(&r);
      throw PeerTimeout(rank,
                        fmt::format("a joiner connected but sent no report within {} s", timeout));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK_MPI(MPI_Test(&r, &done, &status));
  }
  CHECK_MPI(MPI_Get_count(&status, MPI_BYTE, &count));
  raw.resize(static_cast<size_t>(count));
  return raw;
}

void answer_joiner(MPI_Comm inter, bool admitted, const std::string &reason,
                   const JoinAssignment &assignment, double timeout) {
  const Words verdict = encode(VerdictMessage{admitted, reason});
  const std::array<int64_t, 3> words{assignment.rank, assignment.sync, assignment.local_steps};
  RequestSet set;
  isend_words(set, verdict, 0, kTagVerdict, inter, "sending the joiner its verdict");
  MPI_Request r;
  CHECK_MPI(MPI_Isend(words.data(), 3, MPI_INT64_T, 0, kTagVerdict, inter, &r));
  set.add(r, static_cast<int>(assignment.rank), "sending the joiner its rank");
  set.wait_all(timeout);
}

namespace {

// MPI_Comm_accept has no deadline of its own: a watchdog ends the process when rank 0 has not
// taken this joiner in time (rank 0 is stuck), or at once when the job has ended meanwhile (its
// "-running" name is gone: rank 0 takes it back as the job ends).
class AcceptDeadline {
public:
  AcceptDeadline(double seconds, std::string why, std::string service, std::string port)
      : thread_([this, seconds, why = std::move(why), service = std::move(service),
                 port = std::move(port)] {
          const auto start = Clock::now();
          std::unique_lock<std::mutex> lock(mutex_);
          std::string reason = why;
          while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return done_; })) {
            char value[MPI_MAX_PORT_NAME] = {0};
            if (MPI_Lookup_name(running_name(service).c_str(), MPI_INFO_NULL, value) != MPI_SUCCESS)
              reason = "the job ended before it took this joiner";
            else if (seconds_since(start) < seconds)
              continue;
            MPI_Unpublish_name(service.c_str(), MPI_INFO_NULL, port.c_str());
            log_error("{}", reason);
            std::fflush(nullptr);
            std::_Exit(kExitBadInput);
          }
        }) {}
  ~AcceptDeadline() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Publishes `port` as the job's service; another joiner holding the name makes this one wait.
void publish(const JoinTicket &ticket, const char *port, double timeout) {
  const auto start = Clock::now();
  bool said = false;
  while (MPI_Publish_name(ticket.service.c_str(), MPI_INFO_NULL, port) != MPI_SUCCESS) {
    if (seconds_since(start) > timeout)
      throw PeerTimeout(0, fmt::format("another joiner of the job on {} held {} for {:.0f} s",
                                       ticket.host, ticket.service, timeout));
    if (!said)
      log_info("joins: another joiner is waiting to be taken; this one waits its turn");
    said = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

} // namespace

MPI_Comm wait_to_be_taken(const TrainConfig &config, const JoinTicket &ticket,
                          const std::string &file, const TrainerReport &report,
                          JoinAssignment &assignment) {
  CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
  char port[MPI_MAX_PORT_NAME] = {0};
  if (MPI_Lookup_name(running_name(ticket.service).c_str(), MPI_INFO_NULL, port) != MPI_SUCCESS)
    throw UserError(fmt::format("{}: the job on {} is not running (the file is stale), or this "
                                "mpirun was not given the job's --ompi-server",
                                file, ticket.host));
  CHECK_MPI(MPI_Open_port(MPI_INFO_NULL, port));
  // Rank 0 looks after every round, and between epochs evaluates and checkpoints first.
  const double deadline = 2 * config.straggler_timeout + 60;
  publish(ticket, port, deadline);
  log_info("joins: waiting for rank 0 on {} to take this trainer (at its next round's end)",
           ticket.host);
  MPI_Comm inter = MPI_COMM_NULL;
  {
    AcceptDeadline watchdog(
        deadline,
        fmt::format("{}: rank 0 on {} did not take this joiner within {:.0f} s: "
                    "the job has ended (a stale file) or rank 0 is stuck",
                    file, ticket.host, deadline),
        ticket.service, port);
    CHECK_MPI(MPI_Comm_accept(port, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter));
  }
  CHECK_MPI(MPI_Unpublish_name(ticket.service.c_str(), MPI_INFO_NULL, port));
  CHECK_MPI(MPI_Close_port(port));
  CHECK_MPI(MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN));
  const std::vector<uint8_t> bytes = encode_report(report);
  Words verdict_words(VerdictMessage::kWords);
  std::array<int64_t, 3> assigned{};
  RequestSet set;
  MPI_Request r;
  CHECK_MPI(
      MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagReport, inter, &r));
  set.add(r, 0, "sending this joiner's report");
  irecv_words(set, verdict_words, 0, kTagVerdict, inter, "waiting for rank 0's admission verdict");
  CHECK_MPI(MPI_Irecv(assigned.data(), 3, MPI_INT64_T, 0, kTagVerdict, inter, &r));
  set.add(r, 0, "waiting for this joiner's rank in the job");
  set.wait_all(config.join_timeout + 60);
  const VerdictMessage verdict = decode_verdict(verdict_words);
  if (!verdict.admitted) {
    log_warn("not admitted by rank 0: {}; this joiner exits", verdict.reason);
    return MPI_COMM_NULL;
  }
  assignment = {assigned[0], assigned[1], assigned[2]};
  return inter;
}

} // namespace hetrain::run
