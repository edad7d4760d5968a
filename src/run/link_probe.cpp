#include "link_probe.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include "clock.h"
#include "protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace hetrain::run {
using namespace protocol;
namespace {

// What a trainer asks of the aggregator it probes: {op, bytes of one message, messages}.
enum Op : int64_t { kPing = 1, kUp, kDown, kDone };
using Control = std::array<int64_t, 3>;
constexpr int kPings = 5;
// The figures a trainer sends rank 0: its world rank, then per aggregator 8 numbers.
constexpr size_t kFiguresPerLink = 8;

// Every probe wait: a peer still starting (a trainer loads its data after admission) or still
// serving the pairs before this one; a failure is a clear error after this, not a hang.
double probe_deadline(const TrainConfig &config) {
  return config.straggler_timeout + 2 * config.link_probe_seconds;
}

struct Probe {
  MPI_Comm job = MPI_COMM_NULL;
  int aggregators = 1, trainers = 0;
  double deadline = 0;
  std::vector<std::vector<ProbePair>> rounds;
  std::vector<int> world;  // by job rank: what timeouts name (job ranks skip rejected trainers)
  double seconds = 0;      // --link-probe-seconds, for the whole job
  Clock::time_point start; // when every rank of the job had entered the probe
};

// Every rank starts the probe's clock when all have entered it (a trainer loads its data first):
// then the rounds' deadlines (round_end) mean the same time on every rank, to within one message,
// and the wait for a late rank is not taken from any pair's budget.
void start_together(Probe &p) {
  MPI_Request r;
  CHECK_MPI(MPI_Ibarrier(p.job, &r));
  RequestSet set;
  set.add(r, 0, "every rank entering the link probe");
  set.wait_all(p.deadline);
  p.start = Clock::now();
}

Probe make_probe(const TrainConfig &config, MPI_Comm job) {
  int size = 0;
  CHECK_MPI(MPI_Comm_size(job, &size));
  Probe p;
  p.job = job;
  p.aggregators = config.aggregators;
  p.trainers = size - config.aggregators;
  p.deadline = probe_deadline(config);
  p.seconds = config.link_probe_seconds;
  p.rounds = probe_schedule(p.trainers, p.aggregators);
  p.world = world_ranks(job);
  start_together(p);
  return p;
}

// Round r of R ends at start + (r + 1) S / R: a pair whose round started late (the pair before
// ran over by its last transfer) has that much less, so overruns do not add up over the rounds,
// and a pair after one that finished early has the time it left.
Clock::time_point round_end(const Probe &p, size_t round) {
  const double share =
      p.seconds * static_cast<double>(round + 1) / static_cast<double>(p.rounds.size());
  return p.start +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(share));
}

double seconds_until(Clock::time_point end) {
  return std::chrono::duration<double>(end - Clock::now()).count();
}

// The probe measures time, so its waits must not sleep between tests as a round's waits do (up
// to 1 ms): they poll without sleeping for 50 ms, long enough for any message of a fast link.
// A longer wait (a slow link's piece, a peer serving the pairs before) then sleeps between
// tests, leaving the cores to the pair that is measuring (1 ms of a long wait is noise).
constexpr double kBusySeconds = 0.05;
void finish(RequestSet &set, const Probe &p) { set.wait_all(p.deadline, {}, kBusySeconds); }

void send_bytes(RequestSet &set, const void *data, int64_t bytes, int peer, int tag, const Probe &p,
                const std::string &what) {
  MPI_Request r;
  CHECK_MPI(MPI_Isend(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, p.job, &r));
  set.add(r, p.world.at(static_cast<size_t>(peer)), what);
}
void receive_bytes(RequestSet &set, void *data, int64_t bytes, int peer, int tag, const Probe &p,
                   const std::string &what) {
  MPI_Request r;
  CHECK_MPI(MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, p.job, &r));
  set.add(r, p.world.at(static_cast<size_t>(peer)), what);
}

// The aggregator's side of one pair: answers the trainer's requests until it says done.
void serve(const Probe &p, int trainer) {
  std::vector<uint8_t> payload;
  int64_t ack = 0;
  const std::string who =
      fmt::format("the link probe of rank {}", p.world.at(static_cast<size_t>(trainer)));
  for (;;) {
    Control c{};
    {
      RequestSet set;
      receive_bytes(set, c.data(), sizeof(c), trainer, kTagLinkProbe, p, who + ": its request");
      finish(set, p);
    }
    if (c[0] == kDone)
      return;
    if (c[0] != kPing && c[0] != kUp && c[0] != kDown)
      throw std::runtime_error(fmt::format("{}: unknown request {}", who, c[0]));
    payload.resize(static_cast<size_t>(std::max<int64_t>(c[1], 0)));
    RequestSet set;
    for (int64_t k = 0; k < std::max<int64_t>(c[2], 1); ++k) { // one buffer: only time matters
      if (c[0] == kUp)
        receive_bytes(set, payload.data(), c[1], trainer, kTagLinkData, p, who + ": its upload");
      if (c[0] == kDown)
        send_bytes(set, payload.data(), c[1], trainer, kTagLinkData, p, who + ": the download");
    }
    finish(set, p);
    if (c[0] != kDown) {
      RequestSet reply;
      send_bytes(reply, &ack, sizeof(ack), trainer, kTagLinkProbe, p, who + ": the answer");
      finish(reply, p);
    }
  }
}

// This aggregator's pairs in the schedule's order.
void serve_pairs(const Probe &p, int me) {
  for (const auto &round : p.rounds)
    for (const ProbePair &pair : round)
      if (pair.aggregator == me)
        serve(p, p.aggregators + pair.trainer);
}

// One request and its answer, timed from the trainer's side.
double exchange(const Probe &p, int aggregator, Op op, int64_t bytes, std::vector<uint8_t> &payload,
                int64_t messages = 1) {
  const std::string who = fmt::format("aggregator rank {} in the link probe", aggregator);
  payload.resize(static_cast<size_t>(bytes));
  const Control c{op, bytes, messages};
  int64_t ack = 0;
  const auto start = Clock::now();
  RequestSet set;
  send_bytes(set, c.data(), sizeof(c), aggregator, kTagLinkProbe, p, who + ": the request");
  for (int64_t k = 0; k < messages; ++k) {
    if (op == kUp)
      send_bytes(set, payload.data(), bytes, aggregator, kTagLinkData, p, who + ": the upload");
    if (op == kDown)
      receive_bytes(set, payload.data(), bytes, aggregator, kTagLinkData, p,
                    who + ": the download");
  }
  if (op != kDown && op != kDone)
    receive_bytes(set, &ack, sizeof(ack), aggregator, kTagLinkProbe, p, who + ": the answer");
  finish(set, p);
  return seconds_since(start);
}

// One direction of a pair: its last transfer and what it showed.
struct Direction {
  Op op;
  int64_t bytes = 0, message_bytes = 0;  // the last transfer's, in all and per message
  double rate = 0;                       // bytes/s, of the last transfer
  RateBound bound = RateBound::kAtLeast; // no transfer yet: ">= 0"
  double exact_rate = 0;                 // the fastest transfer long enough to trust
  bool done = false;
  // The figure: the fastest trusted transfer (noise on a busy host only ever slows one down,
  // and one of 50 ms or more passes in no burst: one transfer of a 20 Mbit/s upload can measure
  // 1.56 MB/s where the trusted one before it measured 2.35), else the last transfer's rate as a
  // bound.
  double figure() const { return exact_rate > 0 ? exact_rate : rate; }
  RateBound figure_bound() const { return exact_rate > 0 ? RateBound::kExact : bound; }
};

// One more transfer of `d`, sized to end within `seconds_left` at `sizing_rate` (its last one's,
// or before its first the other direction's; next_probe_bytes); false when none fits.
bool step(const Probe &p, int aggregator, Direction &d, int64_t piece_bytes, double trip,
          double sizing_rate, double seconds_left, std::vector<uint8_t> &payload) {
  const int64_t total = next_probe_bytes(d.bytes, sizing_rate, trip, seconds_left);
  if (total == 0)
    return false;
  const ProbeTransfer t = probe_transfer(total, piece_bytes);
  const double seconds = exchange(p, aggregator, d.op, t.message_bytes, payload, t.messages);
  d.bytes = t.message_bytes * t.messages;
  d.message_bytes = t.message_bytes;
  const double previous = d.rate;
  d.rate = transfer_rate(static_cast<double>(d.bytes), seconds, trip);
  d.bound = rate_bound(seconds, trip, d.rate, previous);
  if (d.bound == RateBound::kExact)
    d.exact_rate = std::max(d.exact_rate, d.rate);
  return true;
}

// The median of kPings empty ping-pongs.
double median_round_trip(const Probe &p, int aggregator, std::vector<uint8_t> &payload) {
  std::vector<double> trips;
  for (int k = 0; k < kPings; ++k)
    trips.push_back(exchange(p, aggregator, kPing, 0, payload));
  std::nth_element(trips.begin(), trips.begin() + kPings / 2, trips.end());
  return trips[kPings / 2];
}

// Latency, then both directions in turn with transfers that grow (kProbeGrowth) until one lasts
// long enough to trust (kTrustedTransferSeconds) with messages of the real piece size, or until
// the next would not end by `end`. Only a trusted transfer gives an exact rate (Direction::figure):
// a shorter one can pass in a shaper's burst or fill buffers faster than the link drains them.
LinkFigures measure(const Probe &p, int aggregator, bool same_host, int64_t piece_bytes,
                    Clock::time_point end) {
  std::vector<uint8_t> payload;
  exchange(p, aggregator, kPing, 0, payload); // waits out the pairs before this one
  const double trip = median_round_trip(p, aggregator, payload);
  Direction up{kUp}, down{kDown};
  const int64_t target = std::max(piece_bytes, kFirstProbeBytes);
  while (!up.done || !down.done)
    for (Direction *d : {&up, &down}) {
      if (d->done)
        continue;
      // The upload goes first in each turn: it leaves half of what is left to the download.
      const bool halve = d == &up && !down.done;
      const double left = seconds_until(end) / (halve ? 2 : 1);
      const double sizing_rate = d->bytes > 0 ? d->rate : (d == &up ? down : up).rate;
      // Same host: shared memory, which the plan does not count as a network link; one will do.
      d->done = !step(p, aggregator, *d, piece_bytes, trip, sizing_rate, left, payload) ||
                same_host || (d->bound == RateBound::kExact && d->message_bytes >= target);
    }
  exchange(p, aggregator, kDone, 0, payload);
  LinkFigures f;
  f.aggregator_rank = aggregator;
  f.same_host = same_host;
  f.latency_ms = trip / 2 * 1e3;
  f.up_mb_per_s = up.figure() / 1e6;
  f.down_mb_per_s = down.figure() / 1e6;
  f.up_bound = up.figure_bound();
  f.down_bound = down.figure_bound();
  // The smaller message of the two directions (one that measured nothing has none).
  f.message_bytes = std::min(up.message_bytes > 0 ? up.message_bytes : down.message_bytes,
                             down.message_bytes > 0 ? down.message_bytes : up.message_bytes);
  return f;
}

std::vector<double> encode_figures(int world_rank, const std::vector<LinkFigures> &links) {
  std::vector<double> out{static_cast<double>(world_rank)};
  for (const LinkFigures &f : links) {
    const std::array<double, kFiguresPerLink> v{static_cast<double>(f.aggregator_rank),
                                                f.same_host ? 1.0 : 0.0,
                                                f.latency_ms,
                                                f.up_mb_per_s,
                                                f.down_mb_per_s,
                                                static_cast<double>(f.message_bytes),
                                                static_cast<double>(f.up_bound),
                                                static_cast<double>(f.down_bound)};
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<LinkFigures> decode_figures(const std::vector<double> &in) {
  std::vector<LinkFigures> out;
  for (size_t k = 1; k + kFiguresPerLink <= in.size(); k += kFiguresPerLink) {
    LinkFigures f;
    f.trainer_rank = static_cast<int>(in[0]);
    f.aggregator_rank = static_cast<int>(in[k]);
    f.same_host = in[k + 1] != 0;
    f.latency_ms = in[k + 2];
    f.up_mb_per_s = in[k + 3];
    f.down_mb_per_s = in[k + 4];
    f.message_bytes = static_cast<int64_t>(in[k + 5]);
    f.up_bound = static_cast<RateBound>(static_cast<int>(in[k + 6]));
    f.down_bound = static_cast<RateBound>(static_cast<int>(in[k + 7]));
    out.push_back(f);
  }
  return out;
}

} // namespace

std::vector<LinkFigures> probe_links_coordinator(const TrainConfig &config, MPI_Comm job,
                                                 double *seconds, double *wait_seconds) {
  if (config.link_probe_seconds <= 0)
    return {};
  const auto start = Clock::now();
  const Probe p = make_probe(config, job);
  std::vector<std::vector<double>> raw(static_cast<size_t>(p.trainers),
                                       std::vector<double>(1 + kFiguresPerLink * p.aggregators));
  RequestSet figures;
  for (int i = 0; i < p.trainers; ++i)
    receive_bytes(figures, raw[static_cast<size_t>(i)].data(),
                  static_cast<int64_t>(raw[static_cast<size_t>(i)].size() * sizeof(double)),
                  p.aggregators + i, kTagLinks, p, "its link figures");
  serve_pairs(p, 0);
  figures.wait_all(p.deadline);
  std::vector<LinkFigures> links;
  for (const auto &r : raw)
    for (const LinkFigures &f : decode_figures(r))
      links.push_back(f);
  // The bound DESIGN §3 states: S plus the last transfer of a pair that ran over (sized at the
  // rate seen so far, it runs over only when a link is slower than its smaller transfer showed).
  const double took = seconds_since(p.start);
  const double waited = std::chrono::duration<double>(p.start - start).count();
  log_info("links: {} trainer-aggregator pairs probed in {:.2f} s (--link-probe-seconds {}), "
           "after {:.2f} s waiting for every rank to start the probe",
           links.size(), took, config.link_probe_seconds, waited);
  if (seconds)
    *seconds = took;
  if (wait_seconds)
    *wait_seconds = waited;
  return links;
}

void probe_links_server(const TrainConfig &config, MPI_Comm job) {
  if (config.link_probe_seconds <= 0)
    return;
  int me = 0;
  CHECK_MPI(MPI_Comm_rank(job, &me));
  serve_pairs(make_probe(config, job), me);
}

std::vector<LinkFigures> probe_links_trainer(const TrainConfig &config, MPI_Comm job,
                                             const std::vector<int> &hosts, int world_rank,
                                             int64_t piece_bytes) {
  if (config.link_probe_seconds <= 0)
    return {};
  const Probe p = make_probe(config, job);
  int me = 0;
  CHECK_MPI(MPI_Comm_rank(job, &me));
  std::vector<LinkFigures> links(static_cast<size_t>(p.aggregators));
  for (size_t r = 0; r < p.rounds.size(); ++r)
    for (const ProbePair &pair : p.rounds[r])
      if (p.aggregators + pair.trainer == me) {
        const bool same_host =
            hosts.at(static_cast<size_t>(pair.aggregator)) == hosts.at(static_cast<size_t>(me));
        LinkFigures f = measure(p, pair.aggregator, same_host, piece_bytes, round_end(p, r));
        f.trainer_rank = world_rank;
        links[static_cast<size_t>(pair.aggregator)] = f;
      }
  const std::vector<double> words = encode_figures(world_rank, links);
  RequestSet set;
  send_bytes(set, words.data(), static_cast<int64_t>(words.size() * sizeof(double)), 0, kTagLinks,
             p, "sending rank 0 this trainer's link figures");
  set.wait_all(p.deadline);
  return links;
}

nlohmann::json link_json(const LinkFigures &f) {
  return {{"trainer_rank", f.trainer_rank},
          {"aggregator_rank", f.aggregator_rank},
          {"same_host", f.same_host},
          {"latency_ms", f.latency_ms},
          {"up_mb_per_s", f.up_mb_per_s},
          {"down_mb_per_s", f.down_mb_per_s},
          {"message_bytes", f.message_bytes},
          {"up_bound", rate_bound_name(f.up_bound)},
          {"down_bound", rate_bound_name(f.down_bound)}};
}

nlohmann::json links_json(const std::vector<LinkFigures> &links) {
  nlohmann::json out = nlohmann::json::array();
  for (const LinkFigures &f : links)
    out.push_back(link_json(f));
  return out;
}

namespace {
// "2.4", or ">=950.3" / "<=2.6" for a bound (ASCII: the table is read in SLURM logs, and a
// width counts bytes there).
std::string rate_text(double mb_per_s, RateBound bound) {
  const char *mark = bound == RateBound::kAtLeast ? ">=" : bound == RateBound::kAtMost ? "<=" : "";
  return fmt::format("{}{:.1f}", mark, mb_per_s);
}
} // namespace

void log_link_table(const std::vector<LinkFigures> &links,
                    const std::vector<std::string> &host_names) {
  auto name = [&](int rank) {
    return static_cast<size_t>(rank) < host_names.size() ? host_names[static_cast<size_t>(rank)]
                                                         : std::string("?");
  };
  log_info("  {:>7} {:<16} {:>10} {:<16} {:>10} {:>10} {:>10} {:>11}  {}", "trainer", "host",
           "aggregator", "host", "latency ms", "up MB/s", "down MB/s", "message B", "same host");
  for (const LinkFigures &f : links)
    log_info("  {:>7} {:<16} {:>10} {:<16} {:>10.3f} {:>10} {:>10} {:>11}  {}", f.trainer_rank,
             name(f.trainer_rank), f.aggregator_rank, name(f.aggregator_rank), f.latency_ms,
             rate_text(f.up_mb_per_s, f.up_bound), rate_text(f.down_mb_per_s, f.down_bound),
             f.message_bytes, f.same_host ? "yes" : "no");
}

} // namespace hetrain::run
