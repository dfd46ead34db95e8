// StreamScorer: a JetStream pull consumer feeding the serving engine. See
// include/keel/stream/stream.h for the contract; docs/streaming.md for the
// operator's view.
#include "keel/stream/stream.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "keel/core/json.h"
#include "keel/core/util.h"
#include "keel/serve/requests.h"
#include "src/jetstream/jetstream.h"

namespace keel::stream {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
// How long an idle fetch waits for the next message (also how quickly the
// fetcher notices a stop).
constexpr int64_t kIdleFetchMs = 250;
constexpr milliseconds kMaxBackoff{2000};
constexpr milliseconds kMonitorInterval{1000};
// How long Cleanup waits for libnats to run the connection's closed callback.
constexpr milliseconds kCloseCallbackWait{5000};
// Bytes of the original payload a dead letter embeds at most.
constexpr size_t kMaxDeadLetterPayload = 64 * 1024;
// Records per message body (a JSON array); more is a dead letter.
constexpr size_t kMaxRecordsPerMessage = 100000;

using jetstream::NatsText;

// A stream or consumer name: no '.', '*', '>', path separators or whitespace.
bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' ||
        static_cast<unsigned char>(c) <= ' ') {
      return false;
    }
  }
  return true;
}

// A subject: non-empty tokens, no whitespace; wildcards only when allowed
// (a whole '*' token, or '>' as the last token).
bool ValidSubject(std::string_view subject, bool wildcards) {
  if (subject.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = subject.find('.', start);
    std::string_view token =
        subject.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (token.empty()) return false;
    for (char c : token) {
      if (static_cast<unsigned char>(c) <= ' ') return false;
    }
    const bool star = token == "*";
    const bool rest = token == ">";
    if ((star || rest) && !wildcards) return false;
    if (!star && !rest &&
        (token.find('*') != std::string_view::npos || token.find('>') != std::string_view::npos)) {
      return false;
    }
    if (rest && dot != std::string_view::npos) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string_view TrimJson(std::string_view body) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!body.empty() && space(body.front())) body.remove_prefix(1);
  while (!body.empty() && space(body.back())) body.remove_suffix(1);
  return body;
}

using jetstream::Header;

// One queued input message. Owned by the fetcher, then its lane, then the
// worker that took it; only the owner touches `msg`.
struct Item {
  natsMsg* msg = nullptr;
  uint64_t seq = 0;        // stream sequence
  uint64_t delivered = 1;  // delivery count (1 = first delivery)
  std::string key;         // ordering key (ordered mode)
  SteadyClock::time_point fetched;
  SteadyClock::time_point touched;  // last fetch or InProgress: the ack-wait clock
  int64_t fetched_ms = 0;
  // Set when scored; a retry publishes the same bytes under the same id.
  bool scored = false;
  bool dead = false;  // a dead letter (the input is terminated, not acked)
  std::string publish_subject;
  std::string msg_id;
  std::string body;
  std::string score_error;  // why it could not be scored yet (model unavailable)

  Item() = default;
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  ~Item() { natsMsg_Destroy(msg); }
};
using ItemPtr = std::unique_ptr<Item>;

struct Lane {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ItemPtr> items;  // guarded by mu
};

struct PubResult {
  bool done = false;
  bool ok = false;
  bool duplicate = false;
  bool unscored = false;  // not published: the model was unavailable (retried, not a failure)
  bool dropped = false;   // not published: too large even as a dead letter (terminated)
  std::string error;
};

struct Worker {
  size_t index = 0;
  Lane* lane = nullptr;
  jsCtx* js = nullptr;  // this worker's context: its async publishes and their acks
  std::thread thread;

  // Publish acknowledgements, handed over by libnats' reply thread.
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<natsMsg*, size_t> pending;  // published msg -> window slot; guarded by mu
  std::vector<PubResult> results;                // one per window slot; guarded by mu
  size_t outstanding = 0;                        // publishes without an answer; guarded by mu

  // Worker thread only.
  std::deque<ItemPtr> retry;  // failed publishes, in lane order; go first
  milliseconds backoff{0};
  serve::DecodedBatch scratch;
  std::vector<float> features;
  std::vector<float> out;
};

// jsPubAckHandler: runs on libnats' thread for the worker's context.
void OnPublishAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* w = static_cast<Worker*>(closure);
  {
    std::lock_guard<std::mutex> lock(w->mu);
    auto it = w->pending.find(msg);
    if (it != w->pending.end()) {
      PubResult& r = w->results[it->second];
      r.done = true;
      if (pae != nullptr || pa == nullptr) {
        r.ok = false;
        r.error = pae != nullptr && pae->ErrText != nullptr ? std::string(pae->ErrText)
                  : pae != nullptr                          ? natsStatus_GetText(pae->Err)
                                                            : "no publish acknowledgement";
      } else {
        r.ok = true;
        r.duplicate = pa->Duplicate;
      }
      w->pending.erase(it);
      if (--w->outstanding == 0) w->cv.notify_all();
    }
  }
  natsMsg_Destroy(msg);  // the handler owns the published message
}

}  // namespace

struct StreamScorer::Impl {
  Impl(serve::ServingEngine& engine, serve::PredictionLog* log, metrics::Registry* metrics,
       const Clock& clock, StreamOptions options)
      : engine_(engine), log_(log), clock_(clock), options_(std::move(options)) {
    if (metrics == nullptr) {
      own_metrics_ = std::make_unique<metrics::Registry>();
      metrics = own_metrics_.get();
    }
    metrics_ = metrics;
  }

  Status Start();
  Status Stop(milliseconds drain_timeout);
  void Abort();
  void Cleanup();

  Status CheckOptions();
  Status RegisterMetrics();
  Status Connect();
  Status EnsureInputStream();
  Status EnsureOutputStreams();
  Status EnsureConsumer();
  Status Bind();
  Result<std::vector<std::string>> StreamsCapturing(const std::string& subject);

  void FetchLoop();
  // Counts a fetched list in flight, dispatches each message and frees the list.
  void TakeFetched(natsMsgList& list);
  void Dispatch(natsMsg* msg);
  std::string KeyOf(std::string_view payload);
  void WorkerLoop(Worker& w);
  bool TakeWindow(Worker& w, std::vector<ItemPtr>& window, bool wait);
  void ProcessWindow(Worker& w, std::vector<ItemPtr>& window);
  bool FitsMaxPayload(const Item& item) const;
  bool FitOrDeadLetter(Item& item);
  void ScoreWindow(Worker& w, std::vector<ItemPtr>& window);
  void MakeDeadLetter(Item& item, std::string_view error);
  void Finish(ItemPtr item);
  void NakAll(Worker& w, std::vector<ItemPtr>& window);
  void TouchHeld(Worker& w);
  void Release();
  void MonitorLoop();
  void Warn(const std::string& kind, const std::string& message);
  // The Nats-Msg-Id (and request_id) of the publish for input `seq`:
  // <stream>:<durable>:<seq>:<subject>. The durable keeps deployments that
  // read one stream into one subject (champion/challenger) from colliding.
  std::string MsgId(uint64_t seq, const std::string& subject) const {
    return options_.stream + ":" + options_.durable + ":" + std::to_string(seq) + ":" + subject;
  }
  void SetFailure(Status status);
  Status failure() const {
    std::lock_guard<std::mutex> lock(failure_mu_);
    return failure_;
  }

  serve::ServingEngine& engine_;
  serve::PredictionLog* log_;
  const Clock& clock_;
  StreamOptions options_;
  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Registry* metrics_ = nullptr;

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;  // management calls (Start thread, then the monitor)
  natsSubscription* sub_ = nullptr;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread fetcher_;
  std::thread monitor_;
  bool running_ = false;  // controlling thread only
  bool started_ = false;  // controlling thread only: Start() has run (it runs once)
  std::string created_;   // streams Start created, for Describe()
  std::string output_stream_name_;

  std::atomic<bool> stop_fetch_{false};  // no more fetches
  std::atomic<bool> fetch_done_{false};  // the fetcher has queued its last message
  std::atomic<bool> abort_{false};       // nak what is held and stop now
  std::atomic<bool> closing_{false};     // we are closing the connection ourselves

  // Set by OnClosed, the last connection callback libnats runs (on its own
  // thread); Cleanup waits for it so no callback outlives this object.
  std::mutex closed_mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;           // guarded by closed_mu_
  bool callbacks_armed_ = false;  // a connection exists whose callbacks will run (Start thread)
  // The server's max_payload in bytes (0: unknown); set by Connect, lowered
  // when a publish finds a smaller limit.
  std::atomic<int64_t> max_payload_{0};

  std::mutex room_mu_;
  std::condition_variable room_cv_;  // the fetcher waits for room; Stop for zero
  size_t in_flight_ = 0;             // guarded by room_mu_

  std::mutex done_mu_;
  std::condition_variable done_cv_;
  int workers_running_ = 0;  // guarded by done_mu_

  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;  // guarded by monitor_mu_

  mutable std::mutex failure_mu_;
  Status failure_;  // guarded by failure_mu_

  std::mutex warn_mu_;
  std::unordered_map<std::string, std::pair<SteadyClock::time_point, uint64_t>>
      warned_;  // kind -> (last printed, suppressed since); guarded by warn_mu_

  simdjson::dom::parser key_parser_;  // fetcher thread only

  std::atomic<uint64_t> consumed_{0}, published_{0}, dead_lettered_{0}, duplicates_{0}, nacked_{0},
      publish_failures_{0};

  // Metrics (owned by the registry).
  metrics::Counter* m_consumed_ = nullptr;
  metrics::Counter* m_redelivered_ = nullptr;
  metrics::CounterFamily* m_published_ = nullptr;    // {kind}
  metrics::CounterFamily* m_acks_ = nullptr;         // {how}
  metrics::CounterFamily* m_errors_ = nullptr;       // {kind}
  metrics::CounterFamily* m_predictions_ = nullptr;  // {model, version}
  metrics::Counter* m_duplicates_ = nullptr;
  metrics::Gauge* m_pending_ = nullptr;
  metrics::Gauge* m_ack_pending_ = nullptr;
  metrics::Gauge* m_redelivering_ = nullptr;
  metrics::Gauge* m_in_flight_ = nullptr;
  metrics::Gauge* m_connected_ = nullptr;
  metrics::Histogram* m_seconds_ = nullptr;
  // Fixed label children, resolved once (WithLabels takes a mutex).
  metrics::Counter* m_pub_prediction_ = nullptr;
  metrics::Counter* m_pub_dead_letter_ = nullptr;
  metrics::Counter* m_ack_ack_ = nullptr;
  metrics::Counter* m_ack_term_ = nullptr;
  metrics::Counter* m_ack_nak_ = nullptr;
  metrics::Counter* m_err_invalid_input_ = nullptr;
  metrics::Counter* m_err_max_deliver_ = nullptr;
  metrics::Counter* m_err_too_large_ = nullptr;
  metrics::Counter* m_err_publish_ = nullptr;
  metrics::Counter* m_err_fetch_ = nullptr;
  metrics::Counter* m_err_ack_ = nullptr;
  metrics::Counter* m_err_model_ = nullptr;
  metrics::Counter* m_err_metadata_ = nullptr;
};

// ---- start-up ---------------------------------------------------------------

Status StreamScorer::Impl::CheckOptions() {
  StreamOptions& o = options_;
  if (o.dead_letter_subject.empty() && !o.output_subject.empty()) {
    o.dead_letter_subject = o.output_subject + ".dead";
  }
  if (o.output_stream.empty() && !o.stream.empty()) o.output_stream = o.stream + "_SCORES";
  if (o.model_ref.empty()) return InvalidArgument("no model reference to score with");
  if (!ValidName(o.stream)) {
    return InvalidArgument("--stream: \"" + o.stream +
                           "\" is not a JetStream stream name (no '.', '*', '>', spaces)");
  }
  if (!ValidName(o.durable)) {
    return InvalidArgument("--durable: \"" + o.durable +
                           "\" is not a consumer name (no '.', '*', '>', spaces)");
  }
  if (!ValidName(o.output_stream)) {
    return InvalidArgument("--output-stream: \"" + o.output_stream + "\" is not a stream name");
  }
  if (!ValidSubject(o.subject, true)) {
    return InvalidArgument("--subject: \"" + o.subject + "\" is not a NATS subject");
  }
  if (!ValidSubject(o.output_subject, false)) {
    return InvalidArgument("--output-subject: \"" + o.output_subject +
                           "\" is not a NATS subject without wildcards");
  }
  if (!ValidSubject(o.dead_letter_subject, false)) {
    return InvalidArgument("--dead-letter-subject: \"" + o.dead_letter_subject +
                           "\" is not a NATS subject without wildcards");
  }
  if (o.output_subject == o.dead_letter_subject) {
    return InvalidArgument("--dead-letter-subject must differ from --output-subject");
  }
  for (const std::string* s : {&o.output_subject, &o.dead_letter_subject}) {
    if (SubjectMatches(o.subject, *s)) {
      return InvalidArgument(*s + " is matched by the input subject " + o.subject +
                             ": the scorer would consume its own output");
    }
  }
  if (o.max_in_flight < 1 || o.max_in_flight > 1000000) {
    return InvalidArgument("--max-in-flight must be between 1 and 1000000");
  }
  if (o.workers < 1 || o.workers > 256) {
    return InvalidArgument("--workers must be between 1 and 256");
  }
  if (o.window < 1) return InvalidArgument("the publish window must be at least 1");
  o.window = std::min(o.window, o.max_in_flight);
  if (o.max_deliver < 1) return InvalidArgument("--max-deliver must be at least 1");
  if (o.ack_wait < milliseconds(100)) return InvalidArgument("--ack-wait-ms must be at least 100");
  if (o.publish_timeout <= milliseconds(0)) {
    return InvalidArgument("--publish-timeout-ms must be positive");
  }
  // A publish that waits longer than half the ack wait would let JetStream
  // redeliver its input while it is still held.
  o.publish_timeout = std::min(o.publish_timeout, o.ack_wait / 2);
  if (o.max_ack_pending < 0) return InvalidArgument("--max-ack-pending must not be negative");
  if (o.max_ack_pending == 0) {
    o.max_ack_pending = static_cast<int64_t>(std::min<size_t>(o.max_in_flight * 16, 1000000));
  }
  return OkStatus();
}

Status StreamScorer::Impl::RegisterMetrics() {
  try {
    metrics::Registry& m = *metrics_;
    m_consumed_ = &m.AddCounter("keel_stream_messages_consumed_total",
                                "Messages fetched from the JetStream consumer (redeliveries "
                                "included).")
                       .WithLabels({});
    m_redelivered_ = &m.AddCounter("keel_stream_redeliveries_total",
                                   "Fetched messages JetStream had delivered before.")
                          .WithLabels({});
    m_published_ = &m.AddCounter("keel_stream_messages_published_total",
                                 "Publishes JetStream acknowledged, by kind (prediction, "
                                 "dead_letter).",
                                 {"kind"});
    m_acks_ = &m.AddCounter("keel_stream_input_acks_total",
                            "Inputs finished: ack (prediction published), term (dead letter "
                            "published), nak (handed back unfinished).",
                            {"how"});
    m_errors_ = &m.AddCounter("keel_stream_errors_total",
                              "Errors by kind: invalid_input, max_deliver and too_large "
                              "(dead-lettered), publish (retried), fetch, ack, model (retried), "
                              "metadata (nak'ed).",
                              {"kind"});
    m_predictions_ = &m.AddCounter("keel_stream_predictions_total",
                                   "Records scored, by model and version.", {"model", "version"});
    m_duplicates_ = &m.AddCounter("keel_stream_duplicate_publishes_total",
                                  "Publishes JetStream had already stored under the same "
                                  "Nats-Msg-Id (repeats after a redelivery).")
                         .WithLabels({});
    m_pending_ = &m.AddGauge("keel_stream_consumer_pending",
                             "Consumer lag: messages in the stream not yet delivered to the "
                             "durable consumer (num_pending, read every second).")
                      .WithLabels({});
    m_ack_pending_ = &m.AddGauge("keel_stream_consumer_ack_pending",
                                 "Messages delivered to the durable consumer and not yet "
                                 "acknowledged, by every process (num_ack_pending).")
                          .WithLabels({});
    m_redelivering_ = &m.AddGauge("keel_stream_consumer_redelivered",
                                  "Messages JetStream is redelivering (num_redelivered).")
                           .WithLabels({});
    m_in_flight_ =
        &m.AddGauge("keel_stream_in_flight", "Messages this process holds (fetched, not acked).")
             .WithLabels({});
    m_connected_ =
        &m.AddGauge("keel_stream_connected", "1 while connected to NATS.").WithLabels({});
    m_seconds_ =
        &m.AddHistogram("keel_stream_message_seconds", "Time from fetch to the input's ack.", {},
                        metrics::LatencyBuckets())
             .WithLabels({});
    m_pub_prediction_ = &m_published_->WithLabels({"prediction"});
    m_pub_dead_letter_ = &m_published_->WithLabels({"dead_letter"});
    m_ack_ack_ = &m_acks_->WithLabels({"ack"});
    m_ack_term_ = &m_acks_->WithLabels({"term"});
    m_ack_nak_ = &m_acks_->WithLabels({"nak"});
    m_err_invalid_input_ = &m_errors_->WithLabels({"invalid_input"});
    m_err_max_deliver_ = &m_errors_->WithLabels({"max_deliver"});
    m_err_too_large_ = &m_errors_->WithLabels({"too_large"});
    m_err_publish_ = &m_errors_->WithLabels({"publish"});
    m_err_fetch_ = &m_errors_->WithLabels({"fetch"});
    m_err_ack_ = &m_errors_->WithLabels({"ack"});
    m_err_model_ = &m_errors_->WithLabels({"model"});
    m_err_metadata_ = &m_errors_->WithLabels({"metadata"});
  } catch (const std::exception& e) {
    return Internal(std::string("cannot register stream metrics: ") + e.what());
  }
  return OkStatus();
}

namespace {

void OnDisconnected(natsConnection*, void* closure) {
  auto* impl = static_cast<StreamScorer::Impl*>(closure);
  if (impl->closing_.load()) return;
  impl->m_connected_->Set(0);
  impl->Warn("connection", "disconnected from NATS; reconnecting");
}

void OnReconnected(natsConnection*, void* closure) {
  auto* impl = static_cast<StreamScorer::Impl*>(closure);
  impl->m_connected_->Set(1);
  std::cerr << "keel stream: reconnected to NATS" << std::endl;
}

// The last callback libnats runs for a connection. Once closed_ is set the
// Impl may be destroyed at any moment: nothing after the notify touches it.
void OnClosed(natsConnection*, void* closure) {
  auto* impl = static_cast<StreamScorer::Impl*>(closure);
  impl->m_connected_->Set(0);
  if (!impl->closing_.load()) {
    impl->SetFailure(Unavailable("the NATS connection was closed"));
  }
  std::lock_guard<std::mutex> lock(impl->closed_mu_);
  impl->closed_ = true;
  impl->closed_cv_.notify_all();
}

void OnAsyncError(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  auto* impl = static_cast<StreamScorer::Impl*>(closure);
  impl->Warn("nats", std::string("NATS client error: ") + natsStatus_GetText(err));
}

}  // namespace

Status StreamScorer::Impl::Connect() {
  auto configure = [this](natsOptions* opts) {
    natsStatus s = natsOptions_SetReconnectBufSize(opts, 32 << 20);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 5000);
    if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 3);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &OnDisconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &OnReconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &OnClosed, this);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, &OnAsyncError, this);
    return s;
  };
  const Status connected = jetstream::Connect(
      {.url = options_.nats_url, .name = options_.client_name, .jetstream_wait_ms = 5000},
      configure, &nc_, &js_);
  // A connection, even one without a JetStream context, calls back into this
  // object until closed: teardown waits for its closed callback.
  callbacks_armed_ = nc_ != nullptr;
  KEEL_RETURN_IF_ERROR(connected);
  m_connected_->Set(1);
  max_payload_ = natsConnection_GetMaxPayload(nc_);
  return OkStatus();
}

Status StreamScorer::Impl::EnsureInputStream() {
  KEEL_ASSIGN_OR_RETURN(jetstream::StreamLookup found,
                        jetstream::LookupStream(js_, options_.stream, options_.nats_url));
  if (found.exists) return OkStatus();
  if (!options_.create_streams) {
    return NotFound("JetStream stream " + options_.stream + " does not exist on " +
                    options_.nats_url + "; create it (subjects including " + options_.subject +
                    ") or pass --create-stream");
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = options_.stream.c_str();
  const char* subjects[] = {options_.subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  // false: another process made one of that name meanwhile, taken as it is
  // (as one that existed before).
  KEEL_ASSIGN_OR_RETURN(const bool created, jetstream::AddStream(js_, cfg));
  if (created) created_ += (created_.empty() ? "" : ", ") + options_.stream;
  return OkStatus();
}

Result<std::vector<std::string>> StreamScorer::Impl::StreamsCapturing(const std::string& subject) {
  JsonWriter w;
  w.BeginObject();
  w.Key("subject");
  w.String(subject);
  w.EndObject();
  const std::string body = std::move(w).Take();
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_Request(&reply, nc_, "$JS.API.STREAM.NAMES", body.data(),
                                        static_cast<int>(body.size()), 5000);
  if (s != NATS_OK) {
    return Unavailable("cannot list JetStream streams: " + NatsText(s));
  }
  std::string text(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  auto doc = ParseJson(text);
  if (!doc.ok()) return Internal("JetStream answered a stream listing with: " + text);
  // An API error ({"error":{"code":..,"description":..}}) is not an empty list.
  simdjson::dom::element error;
  if (!doc->root()["error"].get(error)) {
    std::string_view description;
    if (error["description"].get_string().get(description)) description = text;
    return Unavailable("cannot list JetStream streams: " + std::string(description));
  }
  std::vector<std::string> names;
  simdjson::dom::array streams;
  if (!doc->root()["streams"].get(streams)) {
    for (auto e : streams) {
      std::string_view name;
      if (!e.get_string().get(name)) names.emplace_back(name);
    }
  }
  return names;
}

Status StreamScorer::Impl::EnsureOutputStreams() {
  std::vector<std::string> missing;
  std::string found;
  for (const std::string* subject : {&options_.output_subject, &options_.dead_letter_subject}) {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, StreamsCapturing(*subject));
    if (names.empty()) {
      missing.push_back(*subject);
    } else if (subject == &options_.output_subject) {
      found = names.front();
    }
  }
  output_stream_name_ = found;
  if (missing.empty()) return OkStatus();
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  if (!options_.create_streams) {
    return NotFound("no JetStream stream captures " + list +
                    " (predictions and dead letters are published with JetStream so their "
                    "publish can be acknowledged); create one or pass --create-stream");
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = options_.output_stream.c_str();
  std::vector<const char*> subjects;
  for (const auto& m : missing) subjects.push_back(m.c_str());
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = js_FileStorage;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(nullptr, js_, &cfg, nullptr, &jerr);
  if (s != NATS_OK) {
    return Unavailable("cannot create JetStream stream " + options_.output_stream + " for " + list +
                       ": " + NatsText(s));
  }
  created_ += (created_.empty() ? "" : ", ") + options_.output_stream;
  if (output_stream_name_.empty()) output_stream_name_ = options_.output_stream;
  return OkStatus();
}

Status StreamScorer::Impl::EnsureConsumer() {
  const int64_t ack_wait_ns = static_cast<int64_t>(options_.ack_wait.count()) * 1000000;
  for (int attempt = 0; attempt < 3; ++attempt) {
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&ci, js_, options_.stream.c_str(), options_.durable.c_str(),
                                      nullptr, &jerr);
    if (s == NATS_OK) {
      const jsConsumerConfig* have = ci->Config;
      const std::string filter = have->FilterSubject ? have->FilterSubject : "";
      if (have->DeliverSubject != nullptr && *have->DeliverSubject != '\0') {
        jsConsumerInfo_Destroy(ci);
        return InvalidArgument("consumer " + options_.durable + " on stream " + options_.stream +
                               " is a push consumer; keel stream needs a pull consumer "
                               "(choose another --durable)");
      }
      if (filter != options_.subject) {
        jsConsumerInfo_Destroy(ci);
        return InvalidArgument("consumer " + options_.durable + " on stream " + options_.stream +
                               " filters subject \"" + filter + "\", not \"" + options_.subject +
                               "\" (choose another --durable)");
      }
      if (have->AckPolicy != js_AckExplicit) {
        jsConsumerInfo_Destroy(ci);
        return InvalidArgument("consumer " + options_.durable +
                               " does not use explicit acks (choose another --durable)");
      }
      if (have->AckWait != ack_wait_ns || have->MaxAckPending != options_.max_ack_pending ||
          have->MaxDeliver > 0) {
        jsConsumerConfig cfg = *have;
        cfg.AckWait = ack_wait_ns;
        cfg.MaxAckPending = options_.max_ack_pending;
        cfg.MaxDeliver = -1;
        s = js_UpdateConsumer(nullptr, js_, options_.stream.c_str(), &cfg, nullptr, &jerr);
        if (s != NATS_OK) {
          const std::string text = NatsText(s);
          jsConsumerInfo_Destroy(ci);
          return Unavailable("cannot update consumer " + options_.durable + ": " + text);
        }
      }
      jsConsumerInfo_Destroy(ci);
      return OkStatus();
    }
    if (s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
      return Unavailable("cannot read consumer " + options_.durable + " on stream " +
                         options_.stream + ": " + NatsText(s));
    }
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = options_.durable.c_str();
    cfg.Description = "keel stream";
    cfg.DeliverPolicy = js_DeliverAll;
    cfg.AckPolicy = js_AckExplicit;
    cfg.AckWait = ack_wait_ns;
    cfg.MaxDeliver = -1;  // keel dead-letters after max_deliver deliveries itself
    cfg.FilterSubject = options_.subject.c_str();
    cfg.ReplayPolicy = js_ReplayInstant;
    cfg.MaxAckPending = options_.max_ack_pending;
    s = js_AddConsumer(nullptr, js_, options_.stream.c_str(), &cfg, nullptr, &jerr);
    if (s == NATS_OK) return OkStatus();
    // Another process may have created it meanwhile: read it again.
    if (attempt == 2) {
      return Unavailable("cannot create consumer " + options_.durable + " on stream " +
                         options_.stream + ": " + NatsText(s));
    }
  }
  return Unavailable("cannot create consumer " + options_.durable);
}

Status StreamScorer::Impl::Bind() {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Consumer = options_.durable.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PullSubscribe(&sub_, js_, options_.subject.c_str(), options_.durable.c_str(),
                                  nullptr, &so, &jerr);
  if (s != NATS_OK) {
    sub_ = nullptr;
    return Unavailable("cannot bind to consumer " + options_.durable + ": " + NatsText(s));
  }
  // Messages the fetcher has not taken yet are held by libnats; no limit
  // beyond max_in_flight is needed.
  natsSubscription_SetPendingLimits(sub_, -1, -1);
  return OkStatus();
}

Status StreamScorer::Impl::Start() {
  // A stopped or failed scorer has closed its connection and threads for
  // good (Cleanup): it is not restarted.
  if (started_) {
    return FailedPrecondition(
        "a stream scorer starts once (this one already started or failed to start): make a new "
        "one");
  }
  started_ = true;
  Status st = CheckOptions();
  if (st.ok()) st = RegisterMetrics();
  if (st.ok()) st = Connect();
  if (st.ok()) st = EnsureInputStream();
  if (st.ok()) st = EnsureOutputStreams();
  if (st.ok()) st = EnsureConsumer();
  if (st.ok()) st = Bind();
  const size_t lanes = options_.ordered_by.empty() ? 1 : static_cast<size_t>(options_.workers);
  for (size_t i = 0; st.ok() && i < lanes; ++i) lanes_.push_back(std::make_unique<Lane>());
  for (int i = 0; st.ok() && i < options_.workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = static_cast<size_t>(i);
    w->lane = lanes_[lanes == 1 ? 0 : static_cast<size_t>(i)].get();
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.AckHandler = &OnPublishAck;
    jo.PublishAsync.AckHandlerClosure = w.get();
    natsStatus s = natsConnection_JetStream(&w->js, nc_, &jo);
    if (s != NATS_OK) st = Internal("cannot create a JetStream context: " + NatsText(s));
    workers_.push_back(std::move(w));
  }
  if (!st.ok()) {
    Cleanup();
    return st;
  }
  running_ = true;
  // std::thread's constructor throws when no thread can be created: nothing
  // leaves this module as an exception.
  try {
    for (auto& w : workers_) {
      Worker* wp = w.get();
      {
        std::lock_guard<std::mutex> lock(done_mu_);
        ++workers_running_;
      }
      try {
        w->thread = std::thread([this, wp] { WorkerLoop(*wp); });
      } catch (...) {
        std::lock_guard<std::mutex> lock(done_mu_);
        --workers_running_;
        throw;
      }
    }
    fetcher_ = std::thread([this] { FetchLoop(); });
    monitor_ = std::thread([this] { MonitorLoop(); });
  } catch (const std::exception& e) {
    Abort();
    Stop(milliseconds(0)).IgnoreError();
    return Internal(std::string("cannot start the stream threads: ") + e.what());
  }
  return OkStatus();
}

// ---- fetching -----------------------------------------------------------------

std::string StreamScorer::Impl::KeyOf(std::string_view payload) {
  simdjson::dom::element doc;
  if (key_parser_.parse(payload.data(), payload.size()).get(doc)) return {};
  simdjson::dom::object object;
  if (doc.get_object().get(object)) return {};
  simdjson::dom::element value;
  if (object[options_.ordered_by].get(value)) return {};
  std::string_view text;
  if (!value.get_string().get(text)) return std::string(text);
  return simdjson::minify(value);
}

void StreamScorer::Impl::TakeFetched(natsMsgList& list) {
  {
    std::lock_guard<std::mutex> lock(room_mu_);
    in_flight_ += static_cast<size_t>(list.Count);
    m_in_flight_->Set(static_cast<double>(in_flight_));
  }
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* msg = list.Msgs[i];
    list.Msgs[i] = nullptr;
    Dispatch(msg);
  }
  natsMsgList_Destroy(&list);
}

void StreamScorer::Impl::Dispatch(natsMsg* msg) {
  auto item = std::make_unique<Item>();
  item->msg = msg;
  item->fetched = item->touched = SteadyClock::now();
  item->fetched_ms = clock_.NowMillis();
  jsMsgMetaData* meta = nullptr;
  natsStatus ms = natsMsg_GetMetaData(&meta, msg);
  if (ms == NATS_OK) {
    item->seq = meta->Sequence.Stream;
    item->delivered = meta->NumDelivered;
    jsMsgMetaData_Destroy(meta);
  }
  consumed_.fetch_add(1, std::memory_order_relaxed);
  if (ms != NATS_OK || item->seq == 0) {
    // Without its stream sequence a message has no output id (a publish with
    // sequence 0 would collide with every other such one): hand it back.
    const std::string text = ms != NATS_OK ? NatsText(ms) : "stream sequence 0";
    m_err_metadata_->Inc();
    const char* reply = natsMsg_GetReply(msg);
    Warn("metadata",
         std::string("cannot read the JetStream metadata of a message (reply subject \"") +
             (reply ? reply : "") + "\"): " + text + "; nak'ed");
    if (natsMsg_Nak(msg, nullptr) == NATS_OK) m_ack_nak_->Inc();
    item.reset();
    Release();
    return;
  }
  m_consumed_->Inc();
  if (item->delivered > 1) m_redelivered_->Inc();
  size_t lane = 0;
  if (!options_.ordered_by.empty()) {
    const char* data = natsMsg_GetData(msg);
    item->key =
        KeyOf(std::string_view(data ? data : "", static_cast<size_t>(natsMsg_GetDataLength(msg))));
    lane = std::hash<std::string>{}(item->key) % lanes_.size();
  }
  Lane& l = *lanes_[lane];
  {
    std::lock_guard<std::mutex> lock(l.mu);
    l.items.push_back(std::move(item));
  }
  l.cv.notify_all();
}

void StreamScorer::Impl::FetchLoop() {
  const size_t max = options_.max_in_flight;
  // Fetch once this much room is free, so fetches are not one message each
  // under load; less room is fetched after an idle wait.
  const size_t min_room = std::max<size_t>(1, std::min<size_t>(max / 4, options_.window));
  bool idle = true;
  milliseconds backoff{0};
  while (!stop_fetch_.load()) {
    size_t room = 0;
    {
      std::unique_lock<std::mutex> lock(room_mu_);
      room_cv_.wait_for(lock, milliseconds(kIdleFetchMs),
                        [&] { return stop_fetch_.load() || max - in_flight_ >= min_room; });
      if (stop_fetch_.load()) break;
      room = max - in_flight_;
      if (room == 0) continue;
    }
    natsMsgList list{};
    natsStatus s;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (idle) {
      // Wait (briefly) for the next message; a batch of 1 returns as soon as it comes.
      s = natsSubscription_Fetch(&list, sub_, 1, kIdleFetchMs, &jerr);
    } else {
      // Take what is available now, up to the room.
      jsFetchRequest req;
      jsFetchRequest_Init(&req);
      req.Batch = static_cast<int>(std::min<size_t>(room, 1 << 20));
      req.NoWait = true;
      req.Expires = int64_t{1000} * 1000000;
      s = natsSubscription_FetchRequest(&list, sub_, &req);
    }
    if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) {
      idle = true;
      continue;
    }
    if (s != NATS_OK) {
      if (closing_.load() || stop_fetch_.load()) break;
      m_err_fetch_->Inc();
      Warn("fetch", "fetch from consumer " + options_.durable + " failed: " + NatsText(s));
      idle = true;
      backoff = std::min(kMaxBackoff, std::max(milliseconds(50), backoff * 2));
      std::unique_lock<std::mutex> lock(room_mu_);
      room_cv_.wait_for(lock, backoff, [&] { return stop_fetch_.load(); });
      continue;
    }
    backoff = milliseconds(0);
    idle = list.Count == 0;
    TakeFetched(list);
  }
  // Messages the server already sent for our last fetch wait in libnats'
  // queue: take them too (up to the free room), so they need not wait out the
  // ack wait. Limit: libnats' Fetch may send a pull for what the queue lacks
  // (a message arriving meanwhile), so this can take a few new messages; they
  // are finished like the others, within the drain timeout.
  uint64_t queued = 0;
  size_t room = 0;
  {
    std::lock_guard<std::mutex> lock(room_mu_);
    room = options_.max_in_flight - in_flight_;
  }
  if (!closing_.load() && !abort_.load() && failure().ok() && room > 0 &&
      natsSubscription_QueuedMsgs(sub_, &queued) == NATS_OK && queued > 0) {
    natsMsgList list{};
    const uint64_t batch = std::min<uint64_t>({queued, room, 1 << 20});
    if (natsSubscription_Fetch(&list, sub_, static_cast<int>(batch), 100, nullptr) == NATS_OK) {
      TakeFetched(list);
    }
  }
  fetch_done_.store(true);
  for (auto& lane : lanes_) lane->cv.notify_all();
}

// ---- workers --------------------------------------------------------------------

void StreamScorer::Impl::Release() {
  std::lock_guard<std::mutex> lock(room_mu_);
  --in_flight_;
  m_in_flight_->Set(static_cast<double>(in_flight_));
  room_cv_.notify_all();
}

// Builds the next window: earlier unfinished messages (retry) first, then
// queued messages, both in lane order. In ordered mode a window holds at most
// one message per key: a message whose key the window already holds is
// skipped (it stays queued, ahead of later messages of its key) and the scan
// goes on, up to 4 x window messages of the lane.
bool StreamScorer::Impl::TakeWindow(Worker& w, std::vector<ItemPtr>& window, bool wait) {
  const bool ordered = !options_.ordered_by.empty();
  std::unordered_set<std::string_view> keys;
  auto fits = [&](const Item& item) {
    if (!ordered) return true;
    return keys.insert(item.key).second;
  };
  // A retry item skipped keeps its key in `keys` (it was skipped because the
  // key was there), so no later message of that key overtakes it.
  for (auto it = w.retry.begin(); it != w.retry.end() && window.size() < options_.window;) {
    if (fits(**it)) {
      window.push_back(std::move(*it));
      it = w.retry.erase(it);
    } else {
      ++it;
    }
  }
  if (window.size() >= options_.window) return true;
  Lane& lane = *w.lane;
  std::unique_lock<std::mutex> lock(lane.mu);
  if (wait && window.empty()) {
    lane.cv.wait_for(lock, milliseconds(200),
                     [&] { return !lane.items.empty() || fetch_done_.load() || abort_.load(); });
  }
  size_t scanned = 0;
  const size_t max_scan = options_.window * 4;
  for (auto it = lane.items.begin();
       it != lane.items.end() && window.size() < options_.window && scanned < max_scan; ++scanned) {
    if (fits(**it)) {
      window.push_back(std::move(*it));
      it = lane.items.erase(it);
    } else {
      if (!ordered) break;
      ++it;
    }
  }
  return !window.empty();
}

void StreamScorer::Impl::MakeDeadLetter(Item& item, std::string_view error) {
  const char* data = natsMsg_GetData(item.msg);
  const std::string_view full(data ? data : "",
                              static_cast<size_t>(natsMsg_GetDataLength(item.msg)));
  // At most kMaxDeadLetterPayload bytes of the original (and at most a
  // quarter of the server's max payload), cut at a UTF-8 boundary.
  size_t cap = kMaxDeadLetterPayload;
  if (const int64_t max = max_payload_.load(); max > 0) {
    cap = std::min(cap, static_cast<size_t>(max) / 4);
  }
  std::string_view payload = full;
  const bool truncated = full.size() > cap;
  if (truncated) {
    size_t cut = cap;
    while (cut > 0 && (static_cast<unsigned char>(full[cut]) & 0xC0) == 0x80) --cut;
    payload = full.substr(0, cut);
  }
  JsonWriter w(payload.size() + 256);
  w.BeginObject();
  w.Key("error");
  w.String(error);
  w.Key("model");
  w.String(options_.model_ref);
  w.Key("input_stream");
  w.String(options_.stream);
  w.Key("input_subject");
  const char* subject = natsMsg_GetSubject(item.msg);
  w.String(subject ? subject : "");
  w.Key("input_seq");
  w.Int(static_cast<int64_t>(item.seq));
  if (std::string id = Header(item.msg, kMsgIdHeader); !id.empty()) {
    w.Key("input_msg_id");
    w.String(id);
  }
  w.Key("deliveries");
  w.Int(static_cast<int64_t>(item.delivered));
  if (simdjson::validate_utf8(payload.data(), payload.size())) {
    w.Key("payload");
    w.String(payload);
  } else {
    w.Key("payload_base64");
    w.String(Base64Encode(payload));
  }
  if (truncated) {
    w.Key("payload_truncated");
    w.Bool(true);
    w.Key("payload_bytes");
    w.Int(static_cast<int64_t>(full.size()));
  }
  w.EndObject();
  item.body = std::move(w).Take();
  item.publish_subject = options_.dead_letter_subject;
  item.msg_id = MsgId(item.seq, item.publish_subject);
  item.dead = true;
  item.scored = true;
}

void StreamScorer::Impl::ScoreWindow(Worker& w, std::vector<ItemPtr>& window) {
  bool need = false;
  for (const auto& item : window) need |= !item->scored;
  if (!need) return;
  auto dep_or = engine_.Get(options_.model_ref);
  if (!dep_or.ok()) {
    m_err_model_->Inc();
    Warn("model", "model " + options_.model_ref + " unavailable: " + dep_or.status().message());
    for (auto& item : window) {
      if (!item->scored) item->score_error = dep_or.status().message();
    }
    return;
  }
  const std::shared_ptr<const serve::Deployment> dep = *dep_or;
  const data::FeaturePipeline& pipeline = dep->model->pipeline;
  const size_t nf = pipeline.num_features();
  const size_t k = dep->outputs_per_row;

  struct Span {
    Item* item;
    size_t first_row;
    size_t rows;
    bool single;
    bool log;
    std::vector<std::string> raw;  // per row, for the log (arrays)
  };
  std::vector<Span> spans;
  w.features.clear();
  for (auto& ip : window) {
    Item& item = *ip;
    if (item.scored) continue;
    item.score_error.clear();
    if (item.delivered > static_cast<uint64_t>(options_.max_deliver)) {
      m_err_max_deliver_->Inc();
      MakeDeadLetter(item, "delivered " + std::to_string(item.delivered) +
                               " times without being acknowledged (more than --max-deliver " +
                               std::to_string(options_.max_deliver) + "); not scored again");
      continue;
    }
    const char* data = natsMsg_GetData(item.msg);
    const std::string_view payload(data ? data : "",
                                   static_cast<size_t>(natsMsg_GetDataLength(item.msg)));
    const bool log = log_ != nullptr && log_->Sample();
    const std::string_view trimmed = TrimJson(payload);
    serve::DecodeOptions options;
    options.require_all_columns = !options_.lenient_inputs;
    options.reject_unknown_columns = false;
    options.max_rows = kMaxRecordsPerMessage;
    options.want_raw = log && !trimmed.starts_with('{');
    Status st = serve::DecodePredictBody(payload, pipeline, options, &w.scratch);
    if (st.ok() && w.scratch.rows == 0) st = InvalidArgument("an empty array holds no record");
    if (!st.ok()) {
      m_err_invalid_input_->Inc();
      MakeDeadLetter(item, st.message());
      continue;
    }
    Span span{&item,
              w.features.size() / std::max<size_t>(nf, 1),
              w.scratch.rows,
              w.scratch.single_record,
              log,
              {}};
    if (log) {
      if (w.scratch.single_record) {
        span.raw.emplace_back(trimmed);
      } else {
        span.raw = std::move(w.scratch.raw_rows);
      }
    }
    w.features.insert(w.features.end(), w.scratch.features.begin(),
                      w.scratch.features.begin() + static_cast<ptrdiff_t>(w.scratch.rows * nf));
    spans.push_back(std::move(span));
  }
  if (spans.empty()) return;
  const size_t rows = nf == 0 ? 0 : w.features.size() / nf;
  w.out.assign(rows * k, 0.0f);
  if (rows == 1) {
    dep->model->predictor.PredictRow(w.features.data(), w.out.data());
  } else if (rows > 1) {
    dep->model->predictor.PredictBatch(w.features.data(), rows, w.out.data(), nullptr);
  }
  m_predictions_->WithLabels({dep->name, dep->version}).Inc(static_cast<double>(rows));

  const std::string& output_name = dep->model->info.output_name;
  std::vector<serve::PredictionRecord> records;
  const auto now = SteadyClock::now();
  for (Span& span : spans) {
    Item& item = *span.item;
    item.publish_subject = options_.output_subject;
    item.msg_id = MsgId(item.seq, item.publish_subject);
    std::string& body = item.body;
    body.clear();
    auto append_value = [&](size_t row) {
      body += '"';
      AppendJsonEscaped(body, output_name);
      body += "\":";
      AppendJsonFloats(body, w.out.data() + row * k, k);
    };
    if (span.single) {
      body += '{';
      append_value(span.first_row);
    } else {
      body += "{\"predictions\":[";
      for (size_t r = 0; r < span.rows; ++r) {
        if (r) body += ',';
        body += '{';
        append_value(span.first_row + r);
        body += ",\"request_id\":\"";
        AppendJsonEscaped(body, item.msg_id);
        body += '-';
        body += std::to_string(r);
        body += "\"}";
      }
      body += ']';
    }
    body += ",\"model\":\"";
    AppendJsonEscaped(body, dep->name);
    body += "\",\"model_version\":\"";
    AppendJsonEscaped(body, dep->version);
    body += "\",\"request_id\":\"";
    AppendJsonEscaped(body, item.msg_id);
    body += "\",\"input_stream\":\"";
    AppendJsonEscaped(body, options_.stream);
    body += "\",\"input_seq\":";
    body += std::to_string(item.seq);
    if (std::string id = Header(item.msg, kMsgIdHeader); !id.empty()) {
      body += ",\"input_msg_id\":\"";
      AppendJsonEscaped(body, id);
      body += '"';
    }
    body += '}';
    item.scored = true;
    if (span.log && span.raw.size() == span.rows) {
      const double latency_us =
          std::chrono::duration<double, std::micro>(now - item.fetched).count();
      for (size_t r = 0; r < span.rows; ++r) {
        serve::PredictionRecord rec;
        rec.request_id = span.single ? item.msg_id : item.msg_id + "-" + std::to_string(r);
        rec.time_ms = item.fetched_ms;
        rec.model = dep->name;
        rec.version = dep->version;
        rec.endpoint = "stream";
        rec.input_json = std::move(span.raw[r]);
        AppendJsonFloats(rec.output_json, w.out.data() + (span.first_row + r) * k, k);
        rec.latency_us = latency_us;
        records.push_back(std::move(rec));
      }
    }
  }
  if (!records.empty()) {
    Status st = log_->Append(std::move(records));
    if (!st.ok()) Warn("log", "prediction log: " + st.message());
  }
}

void StreamScorer::Impl::Finish(ItemPtr item) {
  natsStatus s = item->dead ? natsMsg_Term(item->msg, nullptr) : natsMsg_Ack(item->msg, nullptr);
  if (s != NATS_OK) {
    m_err_ack_->Inc();
    Warn("ack", "cannot acknowledge input " + std::to_string(item->seq) +
                    " (it will be redelivered): " + NatsText(s));
  } else {
    (item->dead ? m_ack_term_ : m_ack_ack_)->Inc();
  }
  m_seconds_->Observe(std::chrono::duration<double>(SteadyClock::now() - item->fetched).count());
  item.reset();
  Release();
}

bool StreamScorer::Impl::FitsMaxPayload(const Item& item) const {
  // HPUB counts headers and body against max_payload: "NATS/1.0\r\n",
  // "Nats-Msg-Id: <id>\r\n" and the blank line.
  const size_t size = item.body.size() + item.msg_id.size() + 32;
  const int64_t max = max_payload_.load();
  return max <= 0 || size <= static_cast<size_t>(max);
}

// Makes a scored item publishable within the server's max payload: a
// prediction too large becomes a dead letter saying so. False when even the
// dead letter does not fit (the input is then terminated unpublished).
bool StreamScorer::Impl::FitOrDeadLetter(Item& item) {
  if (FitsMaxPayload(item)) return true;
  if (!item.dead) {
    m_err_too_large_->Inc();
    const size_t size = item.body.size();
    MakeDeadLetter(item, "the prediction is " + std::to_string(size) +
                             " bytes, more than the NATS server's max payload of " +
                             std::to_string(max_payload_.load()) + " bytes; not published");
    if (FitsMaxPayload(item)) return true;
  }
  return false;
}

void StreamScorer::Impl::ProcessWindow(Worker& w, std::vector<ItemPtr>& window) {
  ScoreWindow(w, window);
  const size_t n = window.size();
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.results.assign(n, PubResult{});
    w.pending.clear();
    w.outstanding = 0;
  }
  for (size_t i = 0; i < n; ++i) {
    Item& item = *window[i];
    if (!item.scored) {
      std::lock_guard<std::mutex> lock(w.mu);
      w.results[i].done = true;
      w.results[i].unscored = true;
      continue;
    }
    // At most two attempts: a prediction libnats finds too large is
    // dead-lettered and published once more.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!FitOrDeadLetter(item)) {
        std::lock_guard<std::mutex> lock(w.mu);
        w.results[i].done = true;
        w.results[i].dropped = true;
        break;
      }
      natsMsg* m = nullptr;
      natsStatus s = natsMsg_Create(&m, item.publish_subject.c_str(), nullptr, item.body.data(),
                                    static_cast<int>(item.body.size()));
      if (s == NATS_OK) s = natsMsgHeader_Set(m, kMsgIdHeader, item.msg_id.c_str());
      if (s != NATS_OK) {
        natsMsg_Destroy(m);
        std::lock_guard<std::mutex> lock(w.mu);
        w.results[i].done = true;
        w.results[i].error = NatsText(s);
        break;
      }
      natsMsg* const sent = m;
      {
        std::lock_guard<std::mutex> lock(w.mu);
        w.pending.emplace(sent, i);
        ++w.outstanding;
      }
      s = js_PublishMsgAsync(w.js, &m, nullptr);
      if (s == NATS_OK) break;
      // Not registered: the message is still ours and no answer will come.
      const std::string text = NatsText(s);
      {
        std::lock_guard<std::mutex> lock(w.mu);
        if (auto it = w.pending.find(sent); it != w.pending.end()) {
          w.pending.erase(it);
          --w.outstanding;
          w.results[i].done = true;
          w.results[i].error = text;
        }
      }
      natsMsg_Destroy(m);
      if (s != NATS_MAX_PAYLOAD) break;
      // Permanent: never retried as is. (The server's limit can be lower
      // than the one read at connect after a reconnect.)
      if (const int64_t now_max = natsConnection_GetMaxPayload(nc_); now_max > 0) {
        max_payload_.store(now_max);
      }
      if (item.dead) {
        std::lock_guard<std::mutex> lock(w.mu);
        w.results[i].dropped = true;
        break;
      }
      m_err_too_large_->Inc();
      MakeDeadLetter(item, "the prediction is " + std::to_string(item.body.size()) +
                               " bytes, more than the NATS server's max payload; not published");
      std::lock_guard<std::mutex> lock(w.mu);
      w.results[i] = PubResult{};
    }
  }
  std::vector<PubResult> results;
  {
    std::unique_lock<std::mutex> lock(w.mu);
    const auto deadline = SteadyClock::now() + options_.publish_timeout;
    if (!w.cv.wait_until(lock, deadline, [&] { return w.outstanding == 0 || abort_.load(); }) ||
        w.outstanding > 0) {
      lock.unlock();
      // Take back what JetStream has not answered (timeout or abort); a late
      // answer is then dropped by libnats. A repeat publish of a stored
      // message is dropped by JetStream as a duplicate (same Nats-Msg-Id).
      natsMsgList taken{};
      const bool got = js_PublishAsyncGetPendingList(&taken, w.js) == NATS_OK;
      lock.lock();
      if (got) {
        for (int j = 0; j < taken.Count; ++j) {
          auto it = w.pending.find(taken.Msgs[j]);
          if (it == w.pending.end()) continue;
          PubResult& r = w.results[it->second];
          r.done = true;
          r.error = abort_.load() ? std::string("aborted")
                                  : "no publish acknowledgement within " +
                                        std::to_string(options_.publish_timeout.count()) + " ms";
          w.pending.erase(it);
          --w.outstanding;
        }
      }
      lock.unlock();
      if (got) natsMsgList_Destroy(&taken);
      lock.lock();
      // Answers being handled right now finish promptly.
      w.cv.wait(lock, [&] { return w.outstanding == 0; });
    }
    results = std::move(w.results);
    w.results.clear();
    w.pending.clear();
  }
  std::deque<ItemPtr> back;  // unscored or failed, in window order
  size_t failed = 0;
  std::string first_error;
  std::string failed_subject;
  for (size_t i = 0; i < n; ++i) {
    const PubResult& r = results[i];
    if (r.dropped) {
      Warn("too_large", "the dead letter for input " + std::to_string(window[i]->seq) +
                            " exceeds the NATS server's max payload; input terminated "
                            "unpublished");
      Finish(std::move(window[i]));
    } else if (r.ok) {
      if (r.duplicate) {
        duplicates_.fetch_add(1, std::memory_order_relaxed);
        m_duplicates_->Inc();
      }
      if (window[i]->dead) {
        dead_lettered_.fetch_add(1, std::memory_order_relaxed);
        m_pub_dead_letter_->Inc();
      } else {
        published_.fetch_add(1, std::memory_order_relaxed);
        m_pub_prediction_->Inc();
      }
      Finish(std::move(window[i]));
    } else if (r.unscored) {
      // The model was unavailable (warned by ScoreWindow): scored again later.
      back.push_back(std::move(window[i]));
    } else {
      if (first_error.empty()) {
        first_error = r.error;
        failed_subject = window[i]->publish_subject;
      }
      ++failed;
      back.push_back(std::move(window[i]));
    }
  }
  window.clear();
  if (back.empty()) {
    w.backoff = milliseconds(0);
    return;
  }
  if (failed > 0 && !abort_.load()) {
    publish_failures_.fetch_add(failed, std::memory_order_relaxed);
    m_err_publish_->Inc(static_cast<double>(failed));
    Warn("publish", std::to_string(failed) + " publish(es) to " + failed_subject +
                        " failed (retrying): " + first_error);
  }
  // They go back to the front, ahead of anything left in retry (which comes
  // after them in lane order).
  while (!back.empty()) {
    w.retry.push_front(std::move(back.back()));
    back.pop_back();
  }
  w.backoff = std::min(kMaxBackoff, std::max(milliseconds(50), w.backoff * 2));
}

// Resets JetStream's redelivery timer for messages held (in this worker's
// retry queue or its lane) past a third of the ack wait.
void StreamScorer::Impl::TouchHeld(Worker& w) {
  const auto now = SteadyClock::now();
  const auto limit = options_.ack_wait / 3;
  auto touch = [&](Item& item) {
    if (now - item.touched < limit) return;
    natsMsg_InProgress(item.msg, nullptr);
    item.touched = now;
  };
  for (auto& item : w.retry) touch(*item);
  std::lock_guard<std::mutex> lock(w.lane->mu);
  for (auto& item : w.lane->items) touch(*item);
}

void StreamScorer::Impl::NakAll(Worker& w, std::vector<ItemPtr>& window) {
  std::vector<ItemPtr> all;
  for (auto& item : window) all.push_back(std::move(item));
  window.clear();
  for (auto& item : w.retry) all.push_back(std::move(item));
  w.retry.clear();
  {
    std::lock_guard<std::mutex> lock(w.lane->mu);
    for (auto& item : w.lane->items) all.push_back(std::move(item));
    w.lane->items.clear();
  }
  // In stream order, so JetStream queues them for redelivery in that order.
  std::sort(all.begin(), all.end(),
            [](const ItemPtr& a, const ItemPtr& b) { return a->seq < b->seq; });
  for (auto& item : all) {
    natsMsg_Nak(item->msg, nullptr);
    nacked_.fetch_add(1, std::memory_order_relaxed);
    m_ack_nak_->Inc();
    item.reset();
    Release();
  }
}

void StreamScorer::Impl::WorkerLoop(Worker& w) {
  std::vector<ItemPtr> window;
  window.reserve(options_.window);
  // Held messages (retries, the lane's queue) are touched about every sixth
  // of the ack wait, so none is redelivered while this process holds it.
  const auto touch_every = options_.ack_wait / 6;
  auto last_touch = SteadyClock::now();
  while (true) {
    if (abort_.load()) {
      NakAll(w, window);
      break;
    }
    if (const auto now = SteadyClock::now(); now - last_touch >= touch_every) {
      TouchHeld(w);
      last_touch = now;
    }
    if (!w.retry.empty()) {
      if (w.backoff.count() > 0) {
        // Back off before retrying; Abort() wakes us through the lane.
        std::unique_lock<std::mutex> lock(w.lane->mu);
        w.lane->cv.wait_for(lock, w.backoff, [&] { return abort_.load(); });
        if (abort_.load()) continue;
      }
    }
    if (!TakeWindow(w, window, true)) {
      if (fetch_done_.load() && w.retry.empty()) {
        std::lock_guard<std::mutex> lock(w.lane->mu);
        if (w.lane->items.empty()) break;
      }
      continue;
    }
    ProcessWindow(w, window);
  }
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    --workers_running_;
  }
  done_cv_.notify_all();
}

// ---- monitoring, errors -----------------------------------------------------------

void StreamScorer::Impl::MonitorLoop() {
  while (true) {
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js_, options_.stream.c_str(), options_.durable.c_str(), nullptr,
                           nullptr) == NATS_OK) {
      m_pending_->Set(static_cast<double>(ci->NumPending));
      m_ack_pending_->Set(static_cast<double>(ci->NumAckPending));
      m_redelivering_->Set(static_cast<double>(ci->NumRedelivered));
      jsConsumerInfo_Destroy(ci);
    }
    m_connected_->Set(natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED ? 1 : 0);
    std::unique_lock<std::mutex> lock(monitor_mu_);
    if (monitor_cv_.wait_for(lock, kMonitorInterval, [&] { return monitor_stop_; })) break;
  }
}

void StreamScorer::Impl::Warn(const std::string& kind, const std::string& message) {
  const auto now = SteadyClock::now();
  uint64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(warn_mu_);
    auto [it, fresh] = warned_.try_emplace(kind, now, 0);
    if (!fresh && now - it->second.first < std::chrono::seconds(5)) {
      ++it->second.second;
      return;
    }
    suppressed = fresh ? 0 : it->second.second;
    it->second = {now, 0};
  }
  // One write, so lines from several threads do not interleave.
  std::string line = "keel stream: " + message;
  if (suppressed > 0) line += " (and " + std::to_string(suppressed) + " more like it)";
  line += '\n';
  std::cerr << line << std::flush;
}

void StreamScorer::Impl::SetFailure(Status status) {
  {
    std::lock_guard<std::mutex> lock(failure_mu_);
    if (!failure_.ok()) return;
    failure_ = std::move(status);
  }
  // Nothing can be acked any more: stop fetching; Stop() cleans up.
  stop_fetch_.store(true);
  room_cv_.notify_all();
}

// ---- stopping -----------------------------------------------------------------------

// Each wait below checks abort_ under its own mutex: taking that mutex
// before notifying means no waiter misses the wake-up.
void StreamScorer::Impl::Abort() {
  abort_.store(true);
  stop_fetch_.store(true);
  { std::lock_guard<std::mutex> lock(room_mu_); }
  room_cv_.notify_all();
  for (auto& lane : lanes_) {
    { std::lock_guard<std::mutex> lock(lane->mu); }
    lane->cv.notify_all();
  }
  for (auto& w : workers_) {  // workers waiting for publish acknowledgements
    { std::lock_guard<std::mutex> lock(w->mu); }
    w->cv.notify_all();
  }
  { std::lock_guard<std::mutex> lock(done_mu_); }
  done_cv_.notify_all();
}

Status StreamScorer::Impl::Stop(milliseconds drain_timeout) {
  if (!running_) return OkStatus();
  stop_fetch_.store(true);
  room_cv_.notify_all();
  if (fetcher_.joinable()) fetcher_.join();
  for (auto& lane : lanes_) lane->cv.notify_all();
  {
    std::unique_lock<std::mutex> lock(done_mu_);
    if (!done_cv_.wait_for(lock, drain_timeout,
                           [&] { return workers_running_ == 0 || abort_.load(); })) {
      lock.unlock();
      Warn("stop", "in-flight messages not finished within " +
                       std::to_string(drain_timeout.count()) + " ms; handing them back");
      Abort();
    }
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Whatever the fetcher queued after the workers gave up (abort) goes back.
  for (auto& lane : lanes_) {
    std::deque<ItemPtr> left;
    {
      std::lock_guard<std::mutex> lock(lane->mu);
      left.swap(lane->items);
    }
    for (auto& item : left) {
      natsMsg_Nak(item->msg, nullptr);
      nacked_.fetch_add(1, std::memory_order_relaxed);
      m_ack_nak_->Inc();
      item.reset();
      Release();
    }
  }
  {
    std::lock_guard<std::mutex> lock(monitor_mu_);
    monitor_stop_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  running_ = false;
  // Acks are buffered by libnats: make sure the server has them.
  if (nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED) {
    natsConnection_FlushTimeout(nc_, 5000);
  }
  Cleanup();
  const uint64_t nacked = nacked_.load();
  if (nacked > 0) {
    return Unavailable(std::to_string(nacked) +
                       " message(s) were handed back unfinished; JetStream redelivers them");
  }
  return failure();
}

void StreamScorer::Impl::Cleanup() {
  closing_.store(true);
  for (auto& w : workers_) {
    jsCtx_Destroy(w->js);
    w->js = nullptr;
  }
  if (sub_ != nullptr) {
    natsSubscription_Destroy(sub_);
    sub_ = nullptr;
  }
  if (js_ != nullptr) {
    jsCtx_Destroy(js_);
    js_ = nullptr;
  }
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
    nc_ = nullptr;
  }
  if (callbacks_armed_) {
    // natsConnection_Close only queues the Disconnected/Closed callbacks for
    // libnats' callback thread, and they touch this object: wait for the last
    // one (bounded, in case libnats never runs it).
    std::unique_lock<std::mutex> lock(closed_mu_);
    if (!closed_cv_.wait_for(lock, kCloseCallbackWait, [&] { return closed_; })) {
      std::cerr << "keel stream: the NATS connection's closed callback did not run within "
                << kCloseCallbackWait.count() << " ms\n";
    }
    callbacks_armed_ = false;
  }
  if (m_connected_ != nullptr) m_connected_->Set(0);
}

// ---- public --------------------------------------------------------------------------

StreamScorer::StreamScorer(serve::ServingEngine& engine, serve::PredictionLog* log,
                           metrics::Registry* metrics, const Clock& clock, StreamOptions options)
    : impl_(std::make_unique<Impl>(engine, log, metrics, clock, std::move(options))) {}

StreamScorer::~StreamScorer() {
  if (impl_->running_) {
    impl_->Abort();
    impl_->Stop(milliseconds(0)).IgnoreError();
  } else {
    impl_->Cleanup();
  }
}

Status StreamScorer::Start() { return impl_->Start(); }

Status StreamScorer::Stop(milliseconds drain_timeout) { return impl_->Stop(drain_timeout); }

void StreamScorer::Abort() { impl_->Abort(); }

Status StreamScorer::failure() const { return impl_->failure(); }

StreamStats StreamScorer::stats() const {
  StreamStats s;
  s.consumed = impl_->consumed_.load();
  s.published = impl_->published_.load();
  s.dead_lettered = impl_->dead_lettered_.load();
  s.duplicates = impl_->duplicates_.load();
  s.nacked = impl_->nacked_.load();
  s.publish_failures = impl_->publish_failures_.load();
  return s;
}

std::string StreamScorer::output_stream() const { return impl_->output_stream_name_; }

std::string StreamScorer::created_streams() const { return impl_->created_; }

const StreamOptions& StreamScorer::options() const { return impl_->options_; }

void ReleaseNatsLibrary() { nats_CloseAndWait(2000); }

bool SubjectMatches(std::string_view filter, std::string_view subject) {
  auto next = [](std::string_view& s) {
    size_t dot = s.find('.');
    std::string_view token = s.substr(0, dot);
    s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    return token;
  };
  bool more_filter = !filter.empty();
  bool more_subject = !subject.empty();
  while (more_filter && more_subject) {
    const bool last_filter = filter.find('.') == std::string_view::npos;
    const bool last_subject = subject.find('.') == std::string_view::npos;
    std::string_view f = next(filter);
    std::string_view s = next(subject);
    if (f == ">") return true;
    if (f != "*" && f != s) return false;
    more_filter = !last_filter;
    more_subject = !last_subject;
  }
  return !more_filter && !more_subject;
}

}  // namespace keel::stream
