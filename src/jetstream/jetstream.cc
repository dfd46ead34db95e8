#include "src/jetstream/jetstream.h"

namespace keel::jetstream {

std::string NatsText(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (last == s && text != nullptr && *text != '\0') return text;
  return natsStatus_GetText(s);
}

std::string Header(natsMsg* msg, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, key, &value) == NATS_OK && value != nullptr) return value;
  return {};
}

Status Connect(const ConnectSettings& settings,
               const std::function<natsStatus(natsOptions*)>& configure, natsConnection** nc,
               jsCtx** js) {
  *nc = nullptr;
  *js = nullptr;
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, settings.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(opts, settings.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK && configure) s = configure(opts);
  if (s != NATS_OK) {
    const std::string text = NatsText(s);
    natsOptions_Destroy(opts);
    return InvalidArgument("--nats " + settings.url + ": " + text);
  }
  s = natsConnection_Connect(nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    *nc = nullptr;
    return Unavailable("cannot connect to NATS at " + settings.url + ": " + NatsText(s));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = settings.jetstream_wait_ms;
  s = natsConnection_JetStream(js, *nc, &jo);
  if (s != NATS_OK) {
    *js = nullptr;
    return Internal("cannot create a JetStream context: " + NatsText(s));
  }
  return OkStatus();
}

Result<StreamLookup> LookupStream(jsCtx* js, const std::string& name, const std::string& url) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetStreamInfo(&si, js, name.c_str(), nullptr, &jerr);
  StreamLookup out;
  if (s == NATS_OK) {
    out.exists = true;
    out.retention = si->Config->Retention;
    jsStreamInfo_Destroy(si);
    return out;
  }
  if (s == NATS_NO_RESPONDERS) {
    return Unavailable("JetStream is not enabled on the NATS server at " + url +
                       " (start nats-server with -js)");
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    return Unavailable("cannot read JetStream stream " + name + ": " + NatsText(s));
  }
  return out;
}

Result<bool> AddStream(jsCtx* js, const jsStreamConfig& config) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  // libnats takes the configuration by non-const pointer but only reads it.
  const natsStatus s =
      js_AddStream(nullptr, js, const_cast<jsStreamConfig*>(&config), nullptr, &jerr);
  if (s == NATS_OK) return true;
  if (jerr == JSStreamNameExistErr) return false;  // that name, another configuration
  return Unavailable("cannot create JetStream stream " + std::string(config.Name) + ": " +
                     NatsText(s));
}

}  // namespace keel::jetstream
