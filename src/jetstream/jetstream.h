// Internal: what the batch and stream modules' NATS JetStream clients share
// (connecting, error texts, headers, looking up and creating streams). Not a
// public contract; the modules' own headers are.
//
//   natsConnection* nc = nullptr;
//   jsCtx* js = nullptr;
//   jetstream::ConnectSettings settings{.url = url, .name = "keel worker"};
//   KEEL_RETURN_IF_ERROR(jetstream::Connect(settings, nullptr, &nc, &js));
//   KEEL_ASSIGN_OR_RETURN(auto found, jetstream::LookupStream(js, "KEEL", url));
//
// Threads: free functions; libnats handles are used as libnats allows.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <functional>
#include <string>

#include "keel/core/result.h"

namespace keel::jetstream {

// The text of a libnats failure: the calling thread's last error when it is
// about `s` (it usually names the cause), else the status' text.
std::string NatsText(natsStatus s);

// The value of header `key` of `msg`, empty when it has none.
std::string Header(natsMsg* msg, const char* key);

struct ConnectSettings {
  std::string url;
  std::string name;                  // the client name the server shows
  int64_t jetstream_wait_ms = 5000;  // JetStream API calls' timeout
};

// Connects (2 s timeout, reconnecting forever every 250 ms) and makes a
// JetStream context. `configure`, when set, adds options before connecting
// (callbacks, pings). The caller owns what is set in *nc and *js (freed by
// jsCtx_Destroy, then natsConnection_Close and natsConnection_Destroy), also
// on failure: *nc stays set when only the JetStream context failed, so a
// connection whose callbacks were armed is closed by its owner. Errors:
// InvalidArgument (bad options or URL), Unavailable (no server), Internal.
[[nodiscard]] Status Connect(const ConnectSettings& settings,
                             const std::function<natsStatus(natsOptions*)>& configure,
                             natsConnection** nc, jsCtx** js);

// A stream's configuration, or that it does not exist.
struct StreamLookup {
  bool exists = false;
  jsRetentionPolicy retention = js_LimitsPolicy;
};

// Whether stream `name` exists. Unavailable when JetStream is not enabled on
// the server at `url` (named in the error) or cannot be asked.
[[nodiscard]] Result<StreamLookup> LookupStream(jsCtx* js, const std::string& name,
                                                const std::string& url);

// Creates a stream: true when created (or one of the same configuration
// exists), false when one of that name but another configuration exists
// (e.g. created meanwhile by another process): the caller then looks it up
// and decides whether it will do. Unavailable when it cannot be created.
[[nodiscard]] Result<bool> AddStream(jsCtx* js, const jsStreamConfig& config);

}  // namespace keel::jetstream
