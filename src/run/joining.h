// Joining a running job (DESIGN §7 "Live join"): `hetrain train --accept-joins FILE` writes a
// ticket to FILE; `hetrain join FILE`, started later under its own mpirun (both mpiruns with
// --ompi-server), measures its node, publishes a port under the ticket's service name and waits;
// rank 0 looks the name up after every round (a lookup that finds nothing returns at once, so a
// round never waits for a joiner), connects, and admits or refuses the joiner by the start-up
// rules. The joiner then trains over that intercommunicator, where rank 0 is rank 0 of the
// remote group. Internal to src/run.
#pragma once

#include "hetrain/cluster/report_message.h"
#include "hetrain/config/config.h"

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

// What FILE holds (JSON): where to find the job and how to train like it.
struct JoinTicket {
  std::string service;              // MPI_Publish_name service the joiner publishes its port as
  int64_t messages = 0;             // kMessageVersion of the job
  uint32_t report_protocol = 0;     // kProtocolVersion of its reports
  std::string model_fingerprint;    // model_fingerprint() of the job's model
  std::vector<std::string> command; // the job's `hetrain train` options
  std::string host;                 // rank 0's host, for messages
};
void write_join_ticket(const std::string &path, const JoinTicket &ticket);
// UserError (exit 2) for a missing or malformed file, or a job of another protocol version.
JoinTicket read_join_ticket(const std::string &path);

// What rank 0 tells an admitted joiner besides the verdict: its rank in logs and summaries
// (after the job's world ranks), and the job's decided sync mode and local steps.
struct JoinAssignment {
  int64_t rank = 0, sync = 0, local_steps = 1;
};

// Rank 0: says the job runs (a second name, `service` + "-running", that a joiner looks up first,
// so that a FILE left by an ended job is found at once), and takes it back at the job's end.
void publish_running(const std::string &service);
void unpublish_running(const std::string &service);

// Rank 0, after a round: the intercommunicator with a joiner waiting under `service`, if any.
std::optional<MPI_Comm> connect_waiting_joiner(const std::string &service);
// Rank 0: the joiner's report as sent (PeerTimeout naming `rank` when none came in `timeout` s).
std::vector<uint8_t> receive_joiner_report(MPI_Comm inter, int rank, double timeout);
// Rank 0: the verdict, then the assignment (sent with every verdict: the joiner waits for both).
void answer_joiner(MPI_Comm inter, bool admitted, const std::string &reason,
                   const JoinAssignment &assignment, double timeout);

// The joiner's side (`hetrain join`): waits to be taken, reports, learns its verdict. Returns
// MPI_COMM_NULL when refused (it says why). `report` is sent as is.
MPI_Comm wait_to_be_taken(const TrainConfig &config, const JoinTicket &ticket,
                          const std::string &file, const TrainerReport &report,
                          JoinAssignment &assignment);

} // namespace hetrain::run
