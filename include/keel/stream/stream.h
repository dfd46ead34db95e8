// File: keel/stream/stream.h
//
// Streaming scoring on NATS JetStream: records (JSON objects, the bodies
// /predict takes) are pulled from a durable JetStream consumer, scored by the
// serving engine (so alias moves hot-swap between messages), and each
// prediction is published to an output subject with JetStream; the input is
// acknowledged only once JetStream has acknowledged that publish.
//
//   keel::stream::StreamOptions opts;
//   opts.nats_url = "nats://127.0.0.1:4222";
//   opts.stream = "EVENTS";
//   opts.subject = "events.customers";
//   opts.durable = "keel-churn";
//   opts.output_subject = "scores.churn";
//   opts.model_ref = "churn@champion";                  // served by `engine`
//   keel::stream::StreamScorer scorer(engine, log, &metrics, clock, opts);
//   KEEL_RETURN_IF_ERROR(scorer.Start());               // connects, binds, starts threads
//   ...                                                 // until SIGTERM
//   KEEL_RETURN_IF_ERROR(scorer.Stop());                // drains in-flight messages
//   keel::stream::ReleaseNatsLibrary();                 // at process exit
//
// Delivery: at least once. The order per message is fetch -> score ->
// publish the prediction (or the dead letter) -> wait for JetStream's publish
// acknowledgement -> ack the input (term for a dead letter). A process killed
// at any point leaves its unacknowledged inputs pending; JetStream redelivers
// them after ack_wait, and they are published again. Every publish carries
// `Nats-Msg-Id: <stream>:<durable>:<input stream sequence>:<subject>`, so the
// output stream drops repeats inside its duplicate window and downstream
// readers can drop the rest by that id (it is also the body's request_id and
// the prediction log's request id). The durable is part of the id so that two
// deployments (say champion and challenger durables) reading one stream into
// one subject do not drop each other's outputs as duplicates. A message whose
// JetStream metadata cannot be read (no stream sequence) is nak'ed with a
// warning, never published. The prediction log is written when a message is
// scored, before its publish is acknowledged: a message scored again after a
// failure or redelivery is logged again under the same request id.
//
// Output body (one JSON object, as /predict answers, plus provenance):
//   {"churn_probability":0.07,"model":"churn","model_version":"3",
//    "request_id":"EVENTS:keel-churn:17:scores.churn","input_stream":"EVENTS",
//    "input_seq":17,"input_msg_id":"<the input's Nats-Msg-Id, when set>"}
// A record that is a JSON array of objects gets {"predictions":[{...},...],...}.
//
// Dead letters: a message that cannot be scored (malformed JSON, not an
// object, a missing or ill-typed input field, delivered more than
// max_deliver times) or whose prediction exceeds the server's max payload is
// published to dead_letter_subject as
//   {"error":"...","model":"churn@champion","input_stream":"EVENTS",
//    "input_subject":"events.customers","input_seq":9,
//    "input_msg_id":"<the input's Nats-Msg-Id, when set>","deliveries":1,
//    "payload":"<original text>"}   ("payload_base64" when not UTF-8)
// The payload embeds at most 64 KiB (and at most a quarter of the server's
// max payload) of the original; a longer one is cut (at a UTF-8 boundary) and
// the letter adds "payload_truncated":true and "payload_bytes":<full size>.
// The input is terminated, so a poison message never blocks the stream; a
// dead letter that still does not fit is not published (a warning; the input
// is terminated). A model that is unavailable is not a dead letter: the
// messages are scored again after a back-off.
//
// Ordering: with ordered_by set, messages are dealt to workers by a hash of
// that top-level field; a publish window never holds two messages with the
// same key (a later message of a key already in the window waits for the
// next window, while messages of other keys behind it join this one), and a
// failed publish is retried before any later message of its key. So within
// one process the outputs of one key are stored in fetch order, publish
// failures included; messages of different keys may be reordered. Across processes sharing a
// durable, and across redeliveries after a crash, there is no per-key order (see
// docs/streaming.md).
//
// Backpressure: at most max_in_flight messages are held (fetched and not yet
// acknowledged) by the process; the fetcher asks JetStream for no more than
// the free room.
//
// Threads: Start() creates one fetcher thread (fetches, reads metadata and
// the ordering key, deals messages to lanes), `workers` worker threads
// (score, publish, wait for publish acks, ack inputs) and one monitor thread
// (consumer info -> lag gauges, every second). libnats adds its own threads;
// publish acknowledgements arrive on one libnats thread per worker and are
// handed to the worker under that worker's mutex (which guards its table of
// unanswered publishes). Each lane's mutex guards its queue; a message
// belongs to the fetcher until queued, to its lane while queued (touched only
// under the lane's mutex), then to the worker that took it; only the owner
// touches its natsMsg. One scorer-wide mutex guards the in-flight count the
// fetcher waits on. Start and Stop are called from one controlling thread;
// Abort, stats() and failure() from any thread (after Start returned).
// Nothing here throws: failures are Status values (a thread that cannot be
// created is Internal from Start). libnats' connection callbacks run on its
// own thread; Stop and the destructor wait (up to 5 s) for the last of them
// (the closed callback), so none outlives the scorer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "keel/core/clock.h"
#include "keel/core/metrics.h"
#include "keel/core/result.h"
#include "keel/serve/engine.h"
#include "keel/serve/prediction_log.h"

namespace keel::stream {

struct StreamOptions {
  // One or more server URLs, comma-separated.
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string stream;   // the input stream
  std::string subject;  // the consumer's filter subject
  std::string durable;  // the durable pull consumer's name
  std::string output_subject;
  std::string dead_letter_subject;  // empty: <output_subject>.dead
  // Create the input stream when it does not exist, and a stream
  // `output_stream` for the output and dead-letter subjects when no stream
  // captures them. Otherwise those are NotFound naming what is missing.
  bool create_streams = false;
  std::string output_stream;  // empty: <stream>_SCORES
  std::string model_ref;      // a reference `engine` serves
  size_t max_in_flight = 256;
  int workers = 2;
  size_t window = 64;      // messages one worker publishes before waiting for acks
  std::string ordered_by;  // top-level record field; empty: no ordering
  // A message delivered more often than this is dead-lettered unscored.
  int64_t max_deliver = 5;
  std::chrono::milliseconds ack_wait{30000};
  std::chrono::milliseconds publish_timeout{5000};
  // The durable's max_ack_pending (all processes together); 0 = 16 x max_in_flight.
  int64_t max_ack_pending = 0;
  // Absent input fields are missing values; otherwise they dead-letter the
  // message. Fields the model does not take are ignored either way.
  bool lenient_inputs = false;
  std::string client_name = "keel stream";
};

struct StreamStats {
  uint64_t consumed = 0;          // messages fetched (redeliveries included)
  uint64_t published = 0;         // predictions whose publish JetStream acknowledged
  uint64_t dead_lettered = 0;     // dead letters JetStream acknowledged
  uint64_t duplicates = 0;        // publishes JetStream had already stored (same Nats-Msg-Id)
  uint64_t nacked = 0;            // inputs handed back unfinished (abort, drain timeout)
  uint64_t publish_failures = 0;  // failed publish attempts (retried)
};

class StreamScorer {
 public:
  // `log` may be null (no prediction log); `metrics` may be null (a private
  // registry is used). `engine`, `log`, `metrics` and `clock` must outlive
  // the scorer.
  StreamScorer(serve::ServingEngine& engine, serve::PredictionLog* log, metrics::Registry* metrics,
               const Clock& clock, StreamOptions options);
  ~StreamScorer();  // Abort()s if still running
  StreamScorer(const StreamScorer&) = delete;
  StreamScorer& operator=(const StreamScorer&) = delete;

  // Checks the options (InvalidArgument), connects (Unavailable when NATS is
  // unreachable or JetStream is off), checks or creates the streams
  // (NotFound naming a missing stream or uncaptured subject), creates or
  // updates the durable consumer, binds to it and starts the threads. A
  // scorer starts once: a second Start(), after Stop() or after a failed
  // Start(), is FailedPrecondition (make a new scorer).
  [[nodiscard]] Status Start();
  // Graceful stop: no more fetches; the messages held are finished (published
  // and acked) for up to drain_timeout, then the rest are nak'ed; the
  // connection is flushed and closed. Unavailable when messages had to be
  // nak'ed (JetStream redelivers them). Idempotent.
  [[nodiscard]] Status Stop(std::chrono::milliseconds drain_timeout = std::chrono::seconds(30));
  // Makes a Stop in progress (on another thread) give up at once: the held
  // messages are nak'ed. Safe from any thread.
  void Abort();
  // OK while healthy; the fatal error (e.g. the connection closed for good)
  // after which the scorer stopped working.
  [[nodiscard]] Status failure() const;
  StreamStats stats() const;
  // After Start: the stream that captures the output subject, and the
  // streams Start created (comma-separated; empty when none).
  std::string output_stream() const;
  std::string created_streams() const;
  // The effective options (defaults filled in by Start).
  const StreamOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Frees libnats' process-wide state (its threads and caches); call once at
// process exit, after every scorer is destroyed.
void ReleaseNatsLibrary();

// True when NATS subject `subject` is matched by `filter` (tokens separated
// by '.', '*' matches one token, '>' the rest). Exposed for tests.
bool SubjectMatches(std::string_view filter, std::string_view subject);

}  // namespace keel::stream
