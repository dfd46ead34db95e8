// RunRetrainJob and its audit trail (keel/retrain/retrain.h).
#include "keel/retrain/retrain.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <simdjson.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "keel/core/json.h"
#include "keel/core/sha256.h"
#include "keel/core/util.h"
#include "keel/data/csv.h"
#include "keel/monitor/alerts.h"
#include "keel/monitor/live.h"
#include "keel/store/lease.h"
#include "keel/tracking/tracking.h"
#include "keel/train/metrics.h"

namespace keel::retrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double NumOf(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : kNaN;
}

// ------------------------------------------------------------------ job rows

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

// "host:pid:random": the process that runs a job (retrain_jobs.owner),
// unique even when a restarted container reuses the host name and pid.
const std::string& JobOwner() {
  static const std::string owner = store::Lease::ProcessHolder();
  return owner;
}

// Whether `owner` names a process of this host that is still alive (a job of
// a live process is never taken over, whatever its heartbeat says).
bool OwnerAliveHere(const std::string& owner) {
  const size_t first = owner.find(':');
  const size_t second = owner.find(':', first == std::string::npos ? 0 : first + 1);
  if (first == std::string::npos || second == std::string::npos) return false;
  const std::string host = HostName();
  if (host.empty() || owner.substr(0, first) != host) return false;
  const int64_t pid = std::atoll(owner.substr(first + 1, second - first - 1).c_str());
  // This process's pid under another owner: an earlier process of a
  // restarted container (same host name, same pid, e.g. 1), gone.
  if (pid == static_cast<int64_t>(::getpid()) && owner != JobOwner()) return false;
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// Inserts `job` as a row of this process (heartbeat job.started_ms) within
// the caller's transaction and sets job.id; `attempt`, `not_before_ms` and
// `continuous` (a takeover reruns an update as one) go to their columns.
Status InsertJobRow(store::Connection& c, RetrainJob& job, int attempt, int64_t not_before_ms,
                    bool continuous) {
  KEEL_RETURN_IF_ERROR(c.Query(
      "INSERT INTO retrain_jobs(model, trigger_name, actor, status, started_time, finished_time, "
      "details, owner, heartbeat, attempt, not_before, continuous) VALUES (?, ?, ?, ?, ?, 0, '', "
      "?, ?, ?, ?, ?) RETURNING job_id",
      {store::Value(job.model), store::Value(job.trigger), store::Value(job.actor),
       store::Value(job.status), store::Value(job.started_ms), store::Value(JobOwner()),
       store::Value(job.started_ms), store::Value(static_cast<int64_t>(attempt)),
       store::Value(not_before_ms), store::Value(int64_t{continuous ? 1 : 0})},
      [&](const store::RowView& row) {
        job.id = row.Int(0);
        return OkStatus();
      }));
  return c.Exec("UPDATE retrain_jobs SET details = ? WHERE job_id = ?",
                {store::Value(job.ToJson()), store::Value(job.id)});
}

// One job per model across processes: Unavailable when another process
// runs a job of `job.model` whose heartbeat is younger than `stale_after_ms`
// (a process of this host that is gone does not count), within the
// caller's transaction.
Status RefuseWhileAnotherRuns(store::Connection& c, const RetrainJob& job, int64_t stale_after_ms) {
  std::optional<std::pair<int64_t, std::string>> other;
  const std::string this_host = HostName() + ":";
  KEEL_RETURN_IF_ERROR(
      c.Query("SELECT job_id, owner FROM retrain_jobs WHERE model = ? AND status = 'running' AND "
              "owner <> ? AND heartbeat >= ? ORDER BY job_id",
              {store::Value(job.model), store::Value(JobOwner()),
               store::Value(job.started_ms - stale_after_ms)},
              [&](const store::RowView& row) {
                std::string owner(row.Text(1));
                const bool gone_here = owner.rfind(this_host, 0) == 0 && !OwnerAliveHere(owner);
                if (!other && !gone_here) other.emplace(row.Int(0), std::move(owner));
                return OkStatus();
              }));
  if (!other) return OkStatus();
  return Unavailable("model '" + job.model + "' already has retraining job " +
                     std::to_string(other->first) + " running (in " + other->second +
                     "); one job per model at a time: wait for it, or cancel it (keel retrain "
                     "cancel " +
                     job.model + ")");
}

// Inserts `job` as a running row of this process; with stale_after_ms >= 0
// not while another process runs a job of the model (a watch's rollback,
// which must not wait, passes -1).
Status InsertJob(store::Database& db, RetrainJob& job, bool continuous,
                 int64_t stale_after_ms = -1) {
  return db.Write([&](store::Connection& c) -> Status {
    if (stale_after_ms >= 0) KEEL_RETURN_IF_ERROR(RefuseWhileAnotherRuns(c, job, stale_after_ms));
    return InsertJobRow(c, job, /*attempt=*/1, /*not_before_ms=*/0, continuous);
  });
}

// Turns this process's queued row `job.id` into the running job `job`
// (RetrainRequest::queued_job_id); FailedPrecondition when it is no longer
// queued for this process (cancelled, or taken over by another replica);
// Unavailable, leaving it queued, while another process runs a job of the
// model.
Status ClaimQueuedJob(store::Database& db, const RetrainJob& job, int64_t stale_after_ms) {
  return db.Write([&](store::Connection& c) -> Status {
    // Whose the row is comes first: a row cancelled or taken over is not
    // this process's to wait for either.
    bool mine = false;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT job_id FROM retrain_jobs WHERE job_id = ? AND status = 'queued' AND owner = ?",
        {store::Value(job.id), store::Value(JobOwner())}, [&](const store::RowView&) {
          mine = true;
          return OkStatus();
        }));
    if (mine) KEEL_RETURN_IF_ERROR(RefuseWhileAnotherRuns(c, job, stale_after_ms));
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE retrain_jobs SET trigger_name = ?, actor = ?, status = ?, started_time = ?, "
        "finished_time = 0, details = ?, heartbeat = ? WHERE job_id = ? AND status = 'queued' "
        "AND owner = ?",
        {store::Value(job.trigger), store::Value(job.actor), store::Value(job.status),
         store::Value(job.started_ms), store::Value(job.ToJson()), store::Value(job.started_ms),
         store::Value(job.id), store::Value(JobOwner())}));
    if (c.ChangedRows() == 0) {
      return FailedPrecondition("queued retrain job " + std::to_string(job.id) +
                                " is no longer this process's to start: cancelled, or taken "
                                "over by another replica");
    }
    return OkStatus();
  });
}

// Updates a running job of this process; FailedPrecondition when it is no
// longer (taken over by another replica after its heartbeat stopped). A job
// ending `failed` queues `retry` (when given) in the same transaction, unless
// someone asked to cancel it (RequestCancel) before its heartbeat read that:
// then it ends `cancelled` ("cancelled by ..."), in `job` too, with no retry.
Status UpdateJob(store::Database& db, RetrainJob& job, QueuedJob* retry = nullptr,
                 int64_t retry_backoff_ms = 0) {
  RetrainJob written;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    written = job;  // a retried transaction starts over
    if (retry != nullptr) retry->id = 0;
    if (written.status == "failed") {
      std::string by;
      KEEL_RETURN_IF_ERROR(c.Query("SELECT cancel_requested FROM retrain_jobs WHERE job_id = ?",
                                   {store::Value(job.id)}, [&](const store::RowView& row) {
                                     by = std::string(row.Text(0));
                                     return OkStatus();
                                   }));
      if (!by.empty()) {
        written.status = "cancelled";
        written.message = "cancelled by " + by + ": " + written.message;
      }
    }
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? "
        "AND status = 'running' AND owner = ?",
        {store::Value(written.status), store::Value(written.finished_ms),
         store::Value(written.ToJson()), store::Value(written.id), store::Value(JobOwner())}));
    if (c.ChangedRows() == 0) {
      return FailedPrecondition("retrain job " + std::to_string(job.id) +
                                " is no longer this process's to update: another replica took "
                                "it over after its heartbeat stopped");
    }
    if (retry != nullptr && written.status == "failed") {
      retry->not_before_ms = written.finished_ms + retry_backoff_ms;
      KEEL_RETURN_IF_ERROR(QueueJob(c, *retry, written.finished_ms));
    }
    return OkStatus();
  }));
  job = std::move(written);
  return OkStatus();
}

// Final records of jobs that could not be written (a store error that
// outlasted finish()'s retries): written again with every HeartbeatJobs on
// the same store (by URI; the server's scheduler tick) until the store takes
// them.
struct Unwritten {
  std::string store_uri;
  RetrainJob job;
};
std::mutex g_unwritten_mu;
std::vector<Unwritten> g_unwritten;  // guarded by g_unwritten_mu

// Renews one running job's heartbeat; returns who asked to cancel it
// (RequestCancel; empty when nobody did).
Result<std::string> HeartbeatJob(store::Database& db, int64_t job_id, int64_t now_ms) {
  std::string requested;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) {
    requested.clear();
    return c.Query(
        "UPDATE retrain_jobs SET heartbeat = ? WHERE job_id = ? AND status = 'running' AND "
        "owner = ? RETURNING cancel_requested",
        {store::Value(now_ms), store::Value(job_id), store::Value(JobOwner())},
        [&](const store::RowView& row) {
          requested = std::string(row.Text(0));
          return OkStatus();
        });
  }));
  return requested;
}

// Who asked to cancel job `job_id` (empty when nobody did, or on a store error).
std::string CancelRequestOf(store::Database& db, int64_t job_id) {
  std::string requested;
  db.Read([&](store::Connection& c) {
      requested.clear();
      return c.Query("SELECT cancel_requested FROM retrain_jobs WHERE job_id = ?",
                     {store::Value(job_id)}, [&](const store::RowView& row) {
                       requested = std::string(row.Text(0));
                       return OkStatus();
                     });
    }).IgnoreError();
  return requested;
}

// UpdateJob only while the stored job is in `expected` status (a
// compare-and-set: a job claimed or ended meanwhile is left alone). Returns
// whether it was updated.
Result<bool> UpdateJobIf(store::Database& db, const RetrainJob& job, const std::string& expected) {
  bool updated = false;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    if (job.status == "running" && expected != "running") {
      // Claimed by this process (a shadow phase's decision): its heartbeat from now.
      KEEL_RETURN_IF_ERROR(c.Exec(
          "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ?, owner = ?, "
          "heartbeat = ? WHERE job_id = ? AND status = ?",
          {store::Value(job.status), store::Value(job.finished_ms), store::Value(job.ToJson()),
           store::Value(JobOwner()), store::Value(SystemClock::Default().NowMillis()),
           store::Value(job.id), store::Value(expected)}));
      updated = c.ChangedRows() > 0;
      return OkStatus();
    }
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? AND "
        "status = ?",
        {store::Value(job.status), store::Value(job.finished_ms), store::Value(job.ToJson()),
         store::Value(job.id), store::Value(expected)}));
    updated = c.ChangedRows() > 0;
    return OkStatus();
  }));
  return updated;
}

Result<std::vector<RetrainJob>> JobsInStatus(store::Database& db, const std::string& model,
                                             const std::string& status) {
  std::vector<RetrainJob> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query(
        "SELECT details FROM retrain_jobs WHERE model = ? AND status = ? ORDER BY job_id DESC",
        {store::Value(model), store::Value(status)}, [&](const store::RowView& row) -> Status {
          KEEL_ASSIGN_OR_RETURN(RetrainJob job, RetrainJob::FromJson(row.Text(0)));
          out.push_back(std::move(job));
          return OkStatus();
        });
  }));
  return out;
}

// A logged label as the training and scoring target: the value for
// regression, else the class index `primary` names (and `other`, when
// given, names the same way). None for labels that are neither.
std::optional<float> LabelValue(const std::string& label_json, bool regression,
                                const model::LoadedModel& primary,
                                const model::LoadedModel* other = nullptr) {
  if (regression) {
    char* end = nullptr;
    const double v = std::strtod(label_json.c_str(), &end);
    if (end != label_json.c_str() + label_json.size() || !std::isfinite(v)) return std::nullopt;
    return static_cast<float>(v);
  }
  const int k = monitor::LabelClass(label_json, primary.info.classes);
  if (k < 0) return std::nullopt;
  if (other != nullptr && monitor::LabelClass(label_json, other->info.classes) != k) {
    return std::nullopt;  // the two models name their classes differently
  }
  return static_cast<float>(k);
}

// ------------------------------------------------------------------ data

// RFC 4180 field: quoted when it holds a delimiter, quote, line end or
// surrounding blanks.
std::string CsvField(std::string_view text) {
  const bool quote = text.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!text.empty() && (text.front() == ' ' || text.back() == ' '));
  if (!quote) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// A JSON scalar as the text a CSV cell holds ("" for null and containers).
std::string CellText(simdjson::dom::element v) {
  std::string_view s;
  bool b;
  int64_t i;
  uint64_t u;
  double d;
  if (!v.get_string().get(s)) return std::string(s);
  if (!v.get_bool().get(b)) return b ? "true" : "false";
  if (!v.get_int64().get(i)) return std::to_string(i);
  if (!v.get_uint64().get(u)) return std::to_string(u);
  if (!v.get_double().get(d)) return FormatDouble(d);
  return "";
}

// The label as the training data spells the target: the champion's class
// name when it has classes (nullopt when the label names none), else the
// label's own text.
std::optional<std::string> LabelText(const std::string& label_json,
                                     const std::vector<std::string>& classes) {
  if (!classes.empty()) {
    const int k = monitor::LabelClass(label_json, classes);
    if (k < 0) return std::nullopt;
    return classes[static_cast<size_t>(k)];
  }
  simdjson::dom::parser parser;
  simdjson::dom::element v;
  if (parser.parse(label_json).get(v)) return std::nullopt;
  std::string text = CellText(v);
  if (text.empty()) return std::nullopt;
  return text;
}

struct TrainingData {
  fs::path csv;
  std::string data_sha256;  // of train.data's bytes as copied
  uint64_t base_rows = 0;
  uint64_t window_rows = 0;
  uint64_t skipped = 0;  // window rows whose label names no class / input unreadable
};

// policy.train.data, then the window's rows (see the header, step 3).
Result<TrainingData> WriteTrainingData(const RetrainPolicy& policy,
                                       const std::vector<serve::LoggedPrediction>& window,
                                       const std::vector<std::string>& classes,
                                       const fs::path& out_path) {
  TrainingData out;
  out.csv = out_path;
  std::vector<std::string> header;
  simdjson::dom::parser parser;
  if (!policy.train.data.empty()) {
    KEEL_ASSIGN_OR_RETURN(auto reader, data::CsvReader::Open(policy.train.data));
    header = reader->header();
    while (true) {
      KEEL_ASSIGN_OR_RETURN(bool more, reader->Next());
      if (!more) break;
    }
    out.base_rows = reader->records();
    if (std::find(header.begin(), header.end(), policy.train.target) == header.end()) {
      return InvalidArgument(policy.train.data + ": no column '" + policy.train.target +
                             "' (train.target)");
    }
  } else {
    // The window alone (a command trainer's {data}): the inputs' fields in
    // first-seen order, then the target.
    for (const serve::LoggedPrediction& lp : window) {
      simdjson::dom::object input;
      if (parser.parse(lp.record.input_json).get_object().get(input)) continue;
      for (auto field : input) {
        const std::string key(field.key);
        if (key != policy.train.target &&
            std::find(header.begin(), header.end(), key) == header.end()) {
          header.push_back(key);
        }
      }
    }
    header.push_back(policy.train.target);
  }
  std::ofstream file(out_path, std::ios::binary | std::ios::trunc);
  if (!file) return Internal(out_path.string() + ": cannot create");
  if (policy.train.data.empty()) {
    for (size_t j = 0; j < header.size(); ++j) file << (j > 0 ? "," : "") << CsvField(header[j]);
    file << '\n';
  } else {
    std::ifstream in(policy.train.data, std::ios::binary);
    if (!in) return NotFound(policy.train.data + ": cannot open");
    Sha256 sha;
    char buf[1 << 16];
    char last = '\n';
    while (in) {
      in.read(buf, sizeof buf);
      const std::streamsize got = in.gcount();
      if (got <= 0) break;
      file.write(buf, got);
      sha.Update(std::string_view(buf, static_cast<size_t>(got)));
      last = buf[got - 1];
    }
    if (in.bad()) return Internal(policy.train.data + ": read failed");
    out.data_sha256 = sha.HexDigest();
    if (last != '\n') file << '\n';
  }
  std::string row;
  for (const serve::LoggedPrediction& lp : window) {
    if (!lp.label_json) continue;
    const std::optional<std::string> label = LabelText(*lp.label_json, classes);
    simdjson::dom::object input;
    if (!label || parser.parse(lp.record.input_json).get_object().get(input)) {
      ++out.skipped;
      continue;
    }
    row.clear();
    for (size_t j = 0; j < header.size(); ++j) {
      if (j > 0) row += ',';
      if (header[j] == policy.train.target) {
        row += CsvField(*label);
        continue;
      }
      simdjson::dom::element v;
      if (!input[header[j]].get(v)) row += CsvField(CellText(v));
    }
    row += '\n';
    file << row;
    ++out.window_rows;
  }
  file.flush();
  if (!file) return Internal(out_path.string() + ": write failed");
  return out;
}

// ------------------------------------------------------------------ trainers

struct Trained {
  std::string run_id;
  std::string version;
  std::string version_status;
};

// Runs `command` under /bin/sh in its own process group, output to `log`.
// Cancel (or the deadline) sends SIGTERM to the group, SIGKILL 10 s later.
Status RunCommand(const std::string& command, const fs::path& log,
                  const std::atomic<bool>& cancel) {
  const pid_t pid = fork();
  if (pid < 0) return Internal(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // The trainer starts with default signal handling, whatever the server
    // blocked or ignored.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT}) signal(sig, SIG_DFL);
    setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      ::close(fd);
    }
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  int status = 0;
  auto term_sent = std::chrono::steady_clock::time_point::max();
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      kill(-pid, SIGKILL);
      return Internal(std::string("waitpid: ") + std::strerror(errno));
    }
    if (cancel.load() && term_sent == std::chrono::steady_clock::time_point::max()) {
      kill(-pid, SIGTERM);
      term_sent = std::chrono::steady_clock::now();
    }
    if (term_sent != std::chrono::steady_clock::time_point::max() &&
        std::chrono::steady_clock::now() - term_sent > std::chrono::seconds(10)) {
      kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Whatever the command left in its group (background children, a stage
  // that ignored SIGTERM) ends with it.
  kill(-pid, SIGKILL);
  if (cancel.load()) return Unavailable("the training command was stopped");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return OkStatus();
  std::string tail;
  {
    std::ifstream in(log, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    tail = all.substr(all.size() > 400 ? all.size() - 400 : 0);
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  }
  const std::string how = WIFEXITED(status)
                              ? "exited with status " + std::to_string(WEXITSTATUS(status))
                              : "was killed by signal " + std::to_string(WTERMSIG(status));
  return FailedPrecondition("the training command " + how + (tail.empty() ? "" : ": " + tail));
}

// `text` as one /bin/sh word: single quotes, with ' written as '\''.
std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Substitute(std::string text, const std::string& key, const std::string& value) {
  for (size_t at = text.find(key); at != std::string::npos;
       at = text.find(key, at + value.size())) {
    text.replace(at, key.size(), value);
  }
  return text;
}

// The last `max` bytes of `path` ("" when unreadable), cut at a line start
// when it does not begin at the file's start; `total` gets the file's size.
std::string FileTail(const fs::path& path, size_t max, uintmax_t& total) {
  std::error_code ec;
  total = fs::file_size(path, ec);
  if (ec) {
    total = 0;
    return {};
  }
  std::ifstream in(path, std::ios::binary);
  const uintmax_t start = total > max ? total - max : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (start > 0) {
    const size_t nl = text.find('\n');
    if (nl != std::string::npos) text.erase(0, nl + 1);
  }
  return text;
}

// Runs the policy's training command; its output's tail goes to the job's
// log (`job` is the caller's, updated in the store by the caller).
// Called with a job's run id as soon as the run exists.
using RunStarted = std::function<void(const std::string& run_id)>;

Result<Trained> TrainWithCommand(const RetrainPolicy& policy, RetrainJob& job,
                                 const fs::path& job_dir, const fs::path& data_csv,
                                 const std::string& experiment_id, const RetrainEnv& env,
                                 const std::atomic<bool>& cancel, const RunStarted& on_run) {
  const fs::path out_dir = job_dir / "output";
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Internal(out_dir.string() + ": " + ec.message());
  std::string command =
      Substitute(policy.train.command, "{output_dir}", ShellQuote(out_dir.string()));
  command = Substitute(command, "{data}", ShellQuote(data_csv.string()));
  command = Substitute(command, "{target}", ShellQuote(policy.train.target));
  train::RunRecorder& rec = *env.recorder;
  Trained t;
  KEEL_ASSIGN_OR_RETURN(t.run_id,
                        rec.StartRun("Default", experiment_id,
                                     "retrain-" + policy.model + "-job" + std::to_string(job.id),
                                     {{"mlflow.source.type", "LOCAL"},
                                      {"mlflow.source.name", "keel retrain (command)"},
                                      {"keel.retrain.job", std::to_string(job.id)},
                                      {"keel.retrain.trigger", job.trigger}}));
  if (on_run) on_run(t.run_id);
  auto fail = [&](const Status& s) -> Status {
    rec.EndRun(t.run_id, cancel.load() ? "KILLED" : "FAILED").IgnoreError();
    return s;
  };
  Status s = rec.LogParams(t.run_id, {{"keel.retrain.command", policy.train.command},
                                      {"keel.target", policy.train.target}});
  if (s.ok()) {
    s = RunCommand(command, job_dir / "command.log", cancel);
    uintmax_t total = 0;
    // Room for the line's heading within kMaxJobLogLineBytes.
    std::string tail = FileTail(job_dir / "command.log", kMaxJobLogLineBytes - 128, total);
    AppendJobLog(job, env.clock->NowMillis(),
                 total == 0 ? std::string("training command: no output")
                 : tail.size() < total
                     ? "training command output (the last " + std::to_string(tail.size()) + " of " +
                           std::to_string(total) + " bytes):\n" + tail
                     : "training command output:\n" + tail);
  }
  // The model: output_dir itself, or the one loadable entry inside it.
  fs::path model_dir = out_dir;
  std::string file_name;
  if (s.ok() && !model::IsKeelLoadable(out_dir)) {
    std::vector<fs::path> found;
    for (auto it = fs::directory_iterator(out_dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (model::IsKeelLoadable(it->path())) found.push_back(it->path());
    }
    if (found.size() != 1) {
      s = FailedPrecondition("the training command left " + std::to_string(found.size()) +
                             " loadable models in " + out_dir.string() + " (expected one)");
    } else if (fs::is_directory(found[0], ec)) {
      model_dir = found[0];
    } else {
      file_name = found[0].filename().string();
    }
  }
  if (s.ok()) {
    Result<std::shared_ptr<const model::LoadedModel>> loaded =
        model::LoadModelPackage(file_name.empty() ? model_dir : model_dir / file_name);
    if (!loaded.ok()) s = loaded.status();
  }
  if (!s.ok()) return fail(s);
  Result<std::string> uri = rec.UploadDirectory(t.run_id, model_dir, "model");
  if (!uri.ok()) return fail(uri.status());
  KEEL_RETURN_IF_ERROR(rec.EndRun(t.run_id, "FINISHED"));
  KEEL_ASSIGN_OR_RETURN(
      auto version,
      rec.RegisterModel(policy.model, file_name.empty() ? *uri : *uri + "/" + file_name, t.run_id));
  t.version = version.first;
  t.version_status = version.second;
  return t;
}

// How a job's trainer reports progress and honours cancellation.
train::TrainProgress JobProgress(const RetrainEnv& env, const std::atomic<bool>& cancel) {
  train::TrainProgress progress;
  progress.cancel = &cancel;
  progress.on_status = env.on_status;
  return progress;
}

// Where and how a job's challenger run is recorded: in the champion's
// experiment, named `<kind>-<model>-job<id>`, tagged with the job.
train::RecordOptions JobRecordOptions(const RetrainPolicy& policy, const RetrainJob& job,
                                      const fs::path& job_dir, const std::string& experiment_id,
                                      const std::string& kind, uint64_t window_rows) {
  train::RecordOptions options;
  options.experiment_id = experiment_id;
  options.run_name = kind + "-" + policy.model + "-job" + std::to_string(job.id);
  options.register_name = policy.model;
  options.scratch_dir = job_dir;
  options.extra_tags = {{"keel.retrain.job", std::to_string(job.id)},
                        {"keel.retrain.trigger", job.trigger},
                        {"keel.retrain.window_rows", std::to_string(window_rows)}};
  return options;
}

Result<Trained> TrainWithKeel(const RetrainPolicy& policy, const RetrainJob& job,
                              const fs::path& job_dir, const TrainingData& data,
                              const std::string& experiment_id, const RetrainEnv& env,
                              const std::atomic<bool>& cancel, const RunStarted& on_run) {
  train::TrainSpec spec;
  spec.data_path = data.csv.string();
  spec.data_label =
      policy.train.data + (data.window_rows > 0
                               ? " + " + std::to_string(data.window_rows) + " labeled predictions"
                               : "");
  spec.target = policy.train.target;
  spec.model = policy.train.model;
  spec.params = policy.train.params;
  const train::TrainProgress progress = JobProgress(env, cancel);
  train::RecordOptions options =
      JobRecordOptions(policy, job, job_dir, experiment_id, "retrain", data.window_rows);
  options.on_run_started = on_run;
  KEEL_ASSIGN_OR_RETURN(train::RecordResult r,
                        train::TrainAndRecord(spec, progress, *env.recorder, options));
  return Trained{r.run_id, r.version, r.version_status};
}

// Continuous mode: the champion updated on the window's labeled rows
// (encoded with its own pipeline), recorded and registered as a new version.
Result<Trained> TrainContinued(const RetrainPolicy& policy, const RetrainJob& job,
                               const fs::path& job_dir, const model::LoadedModel& champion,
                               const std::vector<serve::LoggedPrediction>& rows,
                               const std::string& rows_label, const std::string& rows_sha256,
                               const std::string& experiment_id, const RetrainEnv& env,
                               const std::atomic<bool>& cancel, const RunStarted& on_run) {
  const bool regression = champion.info.task == "regression";
  const auto nf = static_cast<size_t>(champion.pipeline.num_features());
  std::vector<float> x, y, row(nf);
  for (const serve::LoggedPrediction& lp : rows) {
    if (!lp.label_json) continue;
    const std::optional<float> label = LabelValue(*lp.label_json, regression, champion);
    if (!label) continue;
    if (!champion.pipeline.EncodeJsonObject(lp.record.input_json, row.data()).ok()) continue;
    x.insert(x.end(), row.begin(), row.end());
    y.push_back(*label);
  }
  if (y.empty()) {
    return FailedPrecondition("none of the " + std::to_string(rows.size()) +
                              " new labeled rows encodes with the champion's pipeline");
  }
  train::ContinueSpec spec;
  KEEL_ASSIGN_OR_RETURN(spec.base_package, env.model_path(policy.model, job.champion_version));
  spec.base_label = policy.model + " version " + job.champion_version;
  spec.x = x.data();
  spec.labels = y.data();
  spec.rows = y.size();
  spec.rounds = policy.continuous.rounds;
  spec.learning_rate = policy.continuous.learning_rate;
  for (const auto& [k, v] : policy.train.params) {
    // Booster parameters carry over; the size and rate of the update are the
    // continuous section's.
    if (k != "n_estimators" && k != "learning_rate" && k != "early_stopping_rounds") {
      spec.params.emplace_back(k, v);
    }
  }
  spec.data_label = rows_label;
  spec.data_sha256 = rows_sha256;
  const train::TrainProgress progress = JobProgress(env, cancel);
  train::RecordOptions options =
      JobRecordOptions(policy, job, job_dir, experiment_id, "continue", spec.rows);
  options.extra_tags.emplace_back("keel.continue.base_version", job.champion_version);
  options.on_run_started = on_run;
  KEEL_ASSIGN_OR_RETURN(train::RecordResult r,
                        train::ContinueAndRecord(spec, progress, *env.recorder, options));
  return Trained{r.run_id, r.version, r.version_status};
}

// The newest logged time the champion has learnt from: the end of the
// window and holdout of the job that promoted it (0 when it was not
// promoted by a job, e.g. registered by hand).
Result<int64_t> SeenUntil(store::Database& db, const std::string& model,
                          const std::string& champion_version) {
  int64_t seen = 0;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query(
        "SELECT details FROM retrain_jobs WHERE model = ? AND status = 'promoted' ORDER BY "
        "job_id DESC",
        {store::Value(model)}, [&](const store::RowView& row) -> Status {
          if (seen > 0) return OkStatus();
          Result<RetrainJob> j = RetrainJob::FromJson(row.Text(0));
          if (!j.ok() || j->challenger_version != champion_version) return OkStatus();
          for (const DataSource& d : j->data) {
            if (d.role == "window" || d.role == "holdout") seen = std::max(seen, d.to_ms);
          }
          if (seen == 0) seen = 1;  // promoted without window rows: from its start
          return OkStatus();
        });
  }));
  return seen;
}

// SHA-256 of rows as `input label` lines: the version of data that is not a file.
std::string RowsSha256(const std::vector<serve::LoggedPrediction>& rows) {
  Sha256 h;
  for (const serve::LoggedPrediction& lp : rows) {
    h.Update(lp.record.input_json);
    h.Update("\t");
    h.Update(lp.label_json.value_or("null"));
    h.Update("\n");
  }
  return h.HexDigest();
}

// ------------------------------------------------------------------ gate

Result<std::shared_ptr<const model::LoadedModel>> LoadVersion(const RetrainEnv& env,
                                                              const std::string& name,
                                                              const std::string& version) {
  KEEL_ASSIGN_OR_RETURN(fs::path path, env.model_path(name, version));
  return model::LoadModelPackage(path);
}

std::string DefaultMetric(const std::string& task) {
  if (task == "multiclass") return "accuracy";
  if (task == "regression") return "rmse";
  return "auc";
}

struct Scored {
  std::vector<float> outputs;  // rows x outputs
  int outputs_per_row = 1;
};

}  // namespace

// ------------------------------------------------------------------ JSON

namespace {

json GateToJson(const GateDecision& gate) {
  json g = {{"passed", gate.passed},
            {"metric", gate.metric},
            {"champion", Num(gate.champion)},
            {"challenger", Num(gate.challenger)},
            {"holdout_rows", gate.holdout_rows},
            {"non_finite", gate.non_finite},
            {"reason", gate.reason},
            {"metrics", json::array()}};
  for (const GateMetric& m : gate.metrics) {
    g["metrics"].push_back(
        {{"name", m.name}, {"champion", Num(m.champion)}, {"challenger", Num(m.challenger)}});
  }
  return g;
}

GateDecision GateFromJson(const json& g) {
  GateDecision d;
  d.passed = g.value("passed", false);
  d.metric = g.value("metric", "");
  d.champion = NumOf(g, "champion");
  d.challenger = NumOf(g, "challenger");
  d.holdout_rows = g.value("holdout_rows", uint64_t{0});
  d.non_finite = g.value("non_finite", uint64_t{0});
  d.reason = g.value("reason", "");
  for (const json& m : g.value("metrics", json::array())) {
    d.metrics.push_back(
        GateMetric{m.value("name", ""), NumOf(m, "champion"), NumOf(m, "challenger")});
  }
  return d;
}

}  // namespace

namespace {

// `text` with every byte that does not belong to a well-formed UTF-8
// sequence replaced by U+FFFD (a command's output may be in any encoding, and
// a cut may land inside a character; the job's JSON must stay valid).
std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      // Overlong forms, surrogates and code points above U+10FFFF.
      uint32_t cp = c & (0x7F >> len);
      for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
      const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      ok = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

void AppendJobLog(RetrainJob& job, int64_t time_ms, std::string text) {
  text = ValidUtf8(text);
  if (job.log.size() >= kMaxJobLogLines) {
    if (job.log.size() == kMaxJobLogLines) {
      job.log.push_back({time_ms, "(the log is full: later lines are not kept)"});
    }
    return;
  }
  if (text.size() > kMaxJobLogLineBytes) {
    text.resize(kMaxJobLogLineBytes);
    // Not in the middle of a UTF-8 sequence.
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) {
      text.pop_back();
    }
    if (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80) != 0) text.pop_back();
    text += " [cut]";
  }
  job.log.push_back({time_ms, std::move(text)});
}

std::string RetrainJob::ToJson() const {
  json j;
  j["id"] = id;
  j["model"] = model;
  j["trigger"] = trigger;
  j["actor"] = actor;
  j["status"] = status;
  j["started_ms"] = started_ms;
  j["finished_ms"] = finished_ms;
  j["run_id"] = run_id;
  j["challenger_version"] = challenger_version;
  j["champion_version"] = champion_version;
  j["promote_alias"] = promote_alias;
  j["message"] = message;
  j["host"] = host;
  j["pid"] = pid;
  j["data"] = json::array();
  for (const DataSource& d : data) {
    j["data"].push_back({{"role", d.role},
                         {"path", d.path},
                         {"sha256", d.sha256},
                         {"rows", d.rows},
                         {"from_ms", d.from_ms},
                         {"to_ms", d.to_ms}});
  }
  j["log"] = json::array();
  for (const JobLogLine& l : log) j["log"].push_back({{"time_ms", l.time_ms}, {"text", l.text}});
  j["gate"] = gate ? GateToJson(*gate) : json(nullptr);
  if (shadow) {
    const ShadowReport& r = *shadow;
    j["shadow"] = {{"started_ms", r.started_ms},
                   {"ends_ms", r.ends_ms},
                   {"requests", r.requests},
                   {"errors", r.errors},
                   {"non_finite", r.non_finite},
                   {"agreement", Num(r.agreement)},
                   {"mean_abs_diff", Num(r.mean_abs_diff)},
                   {"latency_p50_us", r.latency_p50_us},
                   {"latency_p99_us", r.latency_p99_us},
                   {"labeled_rows", r.labeled_rows},
                   {"live", r.live ? GateToJson(*r.live) : json(nullptr)},
                   {"passed", r.passed},
                   {"reason", r.reason}};
  }
  // Invalid UTF-8 from elsewhere (a message quoting a command's output)
  // becomes U+FFFD rather than failing the job's update.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<RetrainJob> RetrainJob::FromJson(std::string_view text) {
  try {
    const json j = json::parse(text);
    RetrainJob job;
    job.id = j.value("id", int64_t{0});
    job.model = j.value("model", "");
    job.trigger = j.value("trigger", "");
    job.actor = j.value("actor", "");
    job.status = j.value("status", "");
    job.started_ms = j.value("started_ms", int64_t{0});
    job.finished_ms = j.value("finished_ms", int64_t{0});
    job.run_id = j.value("run_id", "");
    job.challenger_version = j.value("challenger_version", "");
    job.champion_version = j.value("champion_version", "");
    job.promote_alias = j.value("promote_alias", "");
    job.message = j.value("message", "");
    job.host = j.value("host", "");
    job.pid = j.value("pid", int64_t{0});
    for (const json& d : j.value("data", json::array())) {
      job.data.push_back(DataSource{d.value("role", ""), d.value("path", ""), d.value("sha256", ""),
                                    d.value("rows", uint64_t{0}), d.value("from_ms", int64_t{0}),
                                    d.value("to_ms", int64_t{0})});
    }
    for (const json& l : j.value("log", json::array())) {
      job.log.push_back(JobLogLine{l.value("time_ms", int64_t{0}), l.value("text", "")});
    }
    if (j.contains("gate") && j["gate"].is_object()) job.gate = GateFromJson(j["gate"]);
    if (j.contains("shadow") && j["shadow"].is_object()) {
      const json& g = j["shadow"];
      ShadowReport r;
      r.started_ms = g.value("started_ms", int64_t{0});
      r.ends_ms = g.value("ends_ms", int64_t{0});
      r.requests = g.value("requests", uint64_t{0});
      r.errors = g.value("errors", uint64_t{0});
      r.non_finite = g.value("non_finite", uint64_t{0});
      r.agreement = NumOf(g, "agreement");
      r.mean_abs_diff = NumOf(g, "mean_abs_diff");
      r.latency_p50_us = g.value("latency_p50_us", 0.0);
      r.latency_p99_us = g.value("latency_p99_us", 0.0);
      r.labeled_rows = g.value("labeled_rows", uint64_t{0});
      if (g.contains("live") && g["live"].is_object()) r.live = GateFromJson(g["live"]);
      r.passed = g.value("passed", false);
      r.reason = g.value("reason", "");
      job.shadow = std::move(r);
    }
    return job;
  } catch (const json::exception& e) {
    return DataLoss(std::string("retrain job record is not valid JSON: ") + e.what());
  }
}

// ------------------------------------------------------------------ gate

namespace {

// The gate's decision on scored rows: the challenger's outputs, the
// champion's (null: none) and the labels, row-aligned. `where` names the
// rows in reasons ("holdout", "live").
Result<GateDecision> Decide(const GateConfig& gate, const std::string& task, GateDecision d,
                            const Scored& chal_scored, const Scored* champ_scored,
                            const std::vector<float>& labels, std::string_view where) {
  const bool regression = task == "regression";
  const bool multiclass = task == "multiclass";
  const bool has_champion = champ_scored != nullptr;
  d.holdout_rows = labels.size();
  const size_t non_finite =
      static_cast<size_t>(std::count_if(chal_scored.outputs.begin(), chal_scored.outputs.end(),
                                        [](float v) { return !std::isfinite(v); }));
  d.non_finite = non_finite;
  if (non_finite > 0) {
    d.reason = "the challenger gave " + std::to_string(non_finite) + " non-finite outputs on the " +
               std::string(where);
    return d;
  }
  auto metrics_of = [&](const Scored& s) {
    if (regression) return train::RegressionMetrics(s.outputs, labels);
    if (multiclass) return train::MulticlassMetrics(s.outputs, s.outputs_per_row, labels);
    return train::BinaryMetrics(s.outputs, labels);
  };
  std::vector<train::Metric> chal, champ;
  if (!labels.empty()) {
    chal = metrics_of(chal_scored);
    if (has_champion) champ = metrics_of(*champ_scored);
  }
  for (const train::Metric& m : chal) {
    GateMetric g;
    g.name = m.name;
    g.challenger = m.value;
    g.champion = has_champion ? train::FindMetric(champ, m.name) : kNaN;
    d.metrics.push_back(g);
  }
  d.challenger = train::FindMetric(chal, d.metric);
  d.champion = has_champion ? train::FindMetric(champ, d.metric) : kNaN;

  auto fmt = [](double v) { return FormatDouble(v); };
  if (d.holdout_rows < gate.min_rows) {
    d.reason = "the " + std::string(where) + " has " + std::to_string(d.holdout_rows) +
               " labeled rows both models can score; gate.min_rows is " +
               std::to_string(gate.min_rows);
    return d;
  }
  if (!chal.empty() && std::none_of(chal.begin(), chal.end(),
                                    [&](const train::Metric& m) { return m.name == d.metric; })) {
    std::string known;
    for (const train::Metric& m : chal) known += (known.empty() ? "" : ", ") + m.name;
    return InvalidArgument("gate.metric '" + d.metric + "' is not a metric of a " + task +
                           " model (known: " + known + ")");
  }
  if (!std::isfinite(d.challenger)) {
    d.reason =
        d.metric + " is undefined on the " + std::string(where) + " (e.g. AUC with one class only)";
    return d;
  }
  if (!has_champion) {
    d.passed = true;
    d.reason = "no champion to beat; challenger " + d.metric + " " + fmt(d.challenger) + " on " +
               std::to_string(d.holdout_rows) + " " + std::string(where) + " rows";
    return d;
  }
  const bool higher = train::HigherIsBetter(d.metric);
  const double gain = std::isfinite(d.champion)
                          ? (higher ? d.challenger - d.champion : d.champion - d.challenger)
                          : std::numeric_limits<double>::infinity();
  if (!(gain >= gate.min_delta)) {
    d.reason = d.metric + " " + fmt(d.challenger) + " vs champion " + fmt(d.champion) +
               ": improvement " + fmt(gain) + " is below gate.min_delta " + fmt(gate.min_delta);
    return d;
  }
  for (const GateMetric& m : d.metrics) {
    if (m.name == d.metric || !std::isfinite(m.champion)) continue;
    if (!std::isfinite(m.challenger)) {
      d.reason = m.name + " is undefined for the challenger on the " + std::string(where) +
                 " (champion " + fmt(m.champion) + ")";
      return d;
    }
    const double worse =
        train::HigherIsBetter(m.name) ? m.champion - m.challenger : m.challenger - m.champion;
    if (worse > gate.max_regression) {
      d.reason = m.name + " " + fmt(m.challenger) + " vs champion " + fmt(m.champion) +
                 ": worse by " + fmt(worse) + ", more than gate.max_regression " +
                 fmt(gate.max_regression);
      return d;
    }
  }
  d.passed = true;
  d.reason = d.metric + " " + fmt(d.challenger) + " vs champion " + fmt(d.champion) + " (+" +
             fmt(gain) + ") on " + std::to_string(d.holdout_rows) + " " + std::string(where) +
             " rows";
  return d;
}

}  // namespace

Result<GateDecision> EvaluateGate(const GateConfig& gate, const model::LoadedModel* champion,
                                  const model::LoadedModel& challenger,
                                  const std::vector<serve::LoggedPrediction>& holdout) {
  const std::string task = challenger.info.task.empty() ? "binary" : challenger.info.task;
  GateDecision d;
  d.metric = gate.metric.empty() ? DefaultMetric(task) : gate.metric;
  if (champion != nullptr && champion->info.task != challenger.info.task) {
    return FailedPrecondition("the champion's task (" + champion->info.task +
                              ") differs from the challenger's (" + challenger.info.task + ")");
  }
  const bool regression = task == "regression";
  std::vector<const model::LoadedModel*> models = {&challenger};
  if (champion != nullptr) models.push_back(champion);

  // Rows both models can score, with their labels.
  std::vector<float> labels;
  std::vector<Scored> scored(models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    scored[m].outputs_per_row = models[m]->predictor.num_outputs();
  }
  std::vector<std::vector<float>> rows(models.size());
  for (size_t m = 0; m < models.size(); ++m)
    rows[m].resize(static_cast<size_t>(models[m]->pipeline.num_features()));
  std::vector<float> out(64);
  for (const serve::LoggedPrediction& lp : holdout) {
    if (!lp.label_json) continue;
    const std::optional<float> label = LabelValue(*lp.label_json, regression, challenger, champion);
    if (!label) continue;
    bool ok = true;
    for (size_t m = 0; m < models.size() && ok; ++m) {
      ok = models[m]->pipeline.EncodeJsonObject(lp.record.input_json, rows[m].data()).ok();
    }
    if (!ok) continue;
    for (size_t m = 0; m < models.size(); ++m) {
      out.resize(static_cast<size_t>(scored[m].outputs_per_row));
      models[m]->predictor.PredictRow(rows[m].data(), out.data());
      scored[m].outputs.insert(scored[m].outputs.end(), out.begin(), out.end());
    }
    labels.push_back(*label);
  }
  return Decide(gate, task, std::move(d), scored[0], champion != nullptr ? &scored[1] : nullptr,
                labels, "holdout");
}

// ------------------------------------------------------------------ the job

Result<RetrainJob> RunRetrainJob(const RetrainPolicy& policy, const RetrainEnv& env,
                                 const RetrainRequest& request) {
  if (env.db == nullptr || env.registry == nullptr || env.recorder == nullptr ||
      env.clock == nullptr || !env.model_path) {
    return InvalidArgument("RetrainEnv needs db, registry, recorder, clock and model_path");
  }
  const Clock& clock = *env.clock;
  RetrainJob job;
  // Each step goes to the caller's status lines and to the job's log (stored
  // with the job at its next update).
  auto status_line = [&](const std::string& line) {
    AppendJobLog(job, clock.NowMillis(), line);
    if (env.on_status) env.on_status(line);
  };
  job.model = policy.model;
  job.trigger = request.trigger;
  job.actor = request.actor;
  job.status = "running";
  job.started_ms = clock.NowMillis();
  job.promote_alias = policy.promote;
  job.host = HostName();
  job.pid = static_cast<int64_t>(::getpid());
  // Continuous mode: the labeled rows the champion has not learnt from yet.
  int64_t window_from = job.started_ms - policy.window.recent_ms;
  if (request.continuous) {
    auto skipped = [&](const std::string& why) -> Result<RetrainJob> {
      if (request.queued_job_id != 0) {
        // Not recorded: its queued row goes too.
        KEEL_RETURN_IF_ERROR(DropQueuedJob(*env.db, request.queued_job_id).status());
      }
      job.status = "skipped";
      job.message = why;
      job.finished_ms = clock.NowMillis();
      status_line("continuous update of " + policy.model + " skipped: " + why);
      return job;
    };
    Result<registry::ModelVersion> v =
        env.registry->GetVersionByAlias(policy.model, policy.promote);
    if (!v.ok()) {
      if (v.status().code() != StatusCode::kInvalidArgument &&
          v.status().code() != StatusCode::kNotFound) {
        return v.status();
      }
      return skipped("no " + policy.promote + " to update");
    }
    if (!policy.train.command.empty()) {
      return skipped(
          "the policy trains with a command; continuous updates take keel-trained "
          "models");
    }
    // An update waits while a challenger is in its shadow phase (it would
    // learn the same rows and supersede it).
    KEEL_ASSIGN_OR_RETURN(std::vector<RetrainJob> in_shadow,
                          JobsInStatus(*env.db, policy.model, "shadow"));
    if (!in_shadow.empty()) {
      return skipped("job " + std::to_string(in_shadow.front().id) +
                     "'s challenger is in its shadow phase");
    }
    {
      Result<fs::path> path = env.model_path(policy.model, v->version);
      if (!path.ok()) return skipped(path.status().message());
      Result<model::PackageContents> package = model::ReadModelPackage(*path);
      if (!package.ok()) return skipped(package.status().message());
      if (Status can = train::CanContinue(package->info.format); !can.ok()) {
        return skipped(policy.model + " version " + v->version + ": " + can.message());
      }
    }
    KEEL_ASSIGN_OR_RETURN(int64_t seen, SeenUntil(*env.db, policy.model, v->version));
    window_from = std::max(window_from, seen + 1);
    serve::PredictionQuery q;
    q.model = policy.model;
    q.from_ms = window_from;
    q.to_ms = job.started_ms + 1;
    q.labelled_only = true;
    KEEL_ASSIGN_OR_RETURN(uint64_t fresh, serve::CountPredictions(*env.db, q));
    const uint64_t needed = policy.continuous.min_rows;
    if (fresh < needed) {
      return skipped(std::to_string(fresh) + " new labeled rows since " +
                     (seen > 0 ? "the champion's data (" + std::to_string(seen) + " ms)"
                               : std::string("the window's start")) +
                     ", fewer than " + std::to_string(needed) + " (continuous.min_rows)");
    }
  }
  if (request.queued_job_id != 0) {
    job.id = request.queued_job_id;
    KEEL_RETURN_IF_ERROR(ClaimQueuedJob(*env.db, job, env.stale_after_ms));
  } else {
    KEEL_RETURN_IF_ERROR(InsertJob(*env.db, job, request.continuous, env.stale_after_ms));
  }
  status_line("job " + std::to_string(job.id) + " started: " + job.trigger +
              (job.actor.empty() ? std::string() : " (by " + job.actor + ")") + ", on " + job.host +
              " pid " + std::to_string(job.pid));

  // Cancellation: the caller's flag, a request stored by another process
  // (read with the heartbeat), or the timeout.
  std::atomic<bool> cancel{false};
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool done = false;
  std::string cancelled_by;  // guarded by watch_mu: who asked, through the store
  std::thread watchdog([&] {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(policy.job.timeout_ms);
    auto next_beat = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::unique_lock<std::mutex> lock(watch_mu);
    // Beats until the job is done, cancelled or not: a job winding down
    // after a cancel is still alive, and is not taken over.
    while (!done) {
      if ((request.cancel != nullptr && request.cancel->load()) ||
          std::chrono::steady_clock::now() >= deadline) {
        cancel = true;
      }
      if (std::chrono::steady_clock::now() >= next_beat) {
        // The job is alive: no replica takes it over (a missed beat is retried).
        next_beat = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        lock.unlock();  // the store round trip without the lock finish() takes
        Result<std::string> requested = HeartbeatJob(*env.db, job.id, clock.NowMillis());
        lock.lock();
        if (requested.ok() && !requested->empty() && !cancel.load()) {
          cancelled_by = std::move(requested).value();
          cancel = true;
        }
      }
      watch_cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; });
    }
  });
  struct Joiner {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& done;
    std::thread& t;
    ~Joiner() {
      {
        std::lock_guard<std::mutex> lock(mu);
        done = true;
      }
      cv.notify_all();
      t.join();
    }
  } joiner{watch_mu, watch_cv, done, watchdog};

  std::error_code ec;
  fs::path scratch = env.scratch_dir;
  if (scratch.empty()) {
    scratch = fs::temp_directory_path(ec);
    if (ec) scratch = "/tmp";
  }
  const fs::path job_dir =
      scratch / ("keel-retrain-" + std::to_string(job.id) + "-" + RandomHex(4));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{job_dir};

  auto finish = [&](const std::string& status, const std::string& message) -> Result<RetrainJob> {
    job.status = cancel.load() && status == "failed" ? "cancelled" : status;
    job.message = message;
    if (job.status == "cancelled") {
      std::string by;
      {
        std::lock_guard<std::mutex> lock(watch_mu);
        by = cancelled_by;
      }
      const bool asked = request.cancel != nullptr && request.cancel->load();
      // A local cancel (the scheduler's, Ctrl-C) may have been asked for
      // through the store too (the API records who asked there).
      if (by.empty() && asked) by = CancelRequestOf(*env.db, job.id);
      if (!by.empty()) {
        job.message = "cancelled by " + by + ": " + message;
      } else if (!asked) {
        job.message =
            "timed out after " + monitor::FormatDuration(policy.job.timeout_ms) + ": " + message;
      }
    }
    job.finished_ms = job.status == "shadow" ? 0 : clock.NowMillis();
    status_line("job " + std::to_string(job.id) + " " + job.status + ": " + job.message);
    // The job's end is known now: a store error on its record is retried a
    // few times, and then the job is returned all the same (a job that moved
    // an alias is not run again, so it cannot move the alias twice), its
    // record kept to be written with the next heartbeats of this process
    // (the server's scheduler tick), so the row does not stay `running`.
    // Taken over meanwhile (FailedPrecondition): the job is not this
    // process's any more, and that is returned.
    Status written = UpdateJob(*env.db, job, request.retry, request.retry_backoff_ms);
    for (int attempt = 0;
         !written.ok() && written.code() != StatusCode::kFailedPrecondition && attempt < 4;
         ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
      written = UpdateJob(*env.db, job, request.retry, request.retry_backoff_ms);
    }
    if (written.code() == StatusCode::kFailedPrecondition) return written;
    if (!written.ok()) {
      status_line("job " + std::to_string(job.id) + "'s record could not be written (" +
                  written.message() + "); it is written again with the next heartbeats");
      std::lock_guard<std::mutex> lock(g_unwritten_mu);
      g_unwritten.push_back({env.db->uri(), job});
    }
    return job;
  };
  auto failed = [&](const Status& s) { return finish("failed", s.message()); };

  fs::create_directories(job_dir, ec);
  if (ec) return failed(Internal(job_dir.string() + ": " + ec.message()));

  // The champion now.
  std::shared_ptr<const model::LoadedModel> champion;
  std::string experiment_id;
  {
    Result<registry::ModelVersion> v =
        env.registry->GetVersionByAlias(policy.model, policy.promote);
    // An alias that is not set (InvalidArgument) or a model not registered
    // yet (NotFound) means no champion; any other error ends the job.
    if (!v.ok() && v.status().code() != StatusCode::kInvalidArgument &&
        v.status().code() != StatusCode::kNotFound) {
      return failed(v.status());
    }
    if (v.ok()) {
      job.champion_version = v->version;
      Result<std::shared_ptr<const model::LoadedModel>> loaded =
          LoadVersion(env, policy.model, v->version);
      if (!loaded.ok()) return failed(loaded.status());
      champion = *loaded;
      if (!v->run_id.empty()) {
        Result<train::RunRecorder::RunInfo> info = env.recorder->GetRun(v->run_id);
        if (info.ok()) experiment_id = info->experiment_id;
      }
    }
  }
  status_line("job " + std::to_string(job.id) + ": champion " +
              (job.champion_version.empty() ? std::string("(none)")
                                            : policy.model + " version " + job.champion_version));

  // The recent labeled window, oldest first; its newest part is the holdout.
  const int64_t now = clock.NowMillis();
  serve::PredictionQuery q;
  q.model = policy.model;
  q.from_ms = std::min(window_from, now);
  q.to_ms = now + 1;
  q.labelled_only = true;
  q.limit = 2'000'000;
  q.newest = true;
  Result<std::vector<serve::LoggedPrediction>> window = serve::ReadPredictions(*env.db, q);
  if (!window.ok()) return failed(window.status());
  const size_t n = window->size();
  const auto holdout_n =
      static_cast<size_t>(std::ceil(static_cast<double>(n) * policy.gate.holdout_fraction));
  std::vector<serve::LoggedPrediction> holdout(
      window->end() - static_cast<std::ptrdiff_t>(holdout_n), window->end());
  window->resize(n - holdout_n);
  // (An update learns from the window's rows whatever this setting says.)
  if (!policy.window.include_labeled_predictions && !request.continuous) window->clear();

  // Records logged rows as a data source, with their time range.
  auto add_rows = [&](const char* role, const std::string& path, const std::string& sha,
                      uint64_t count, const std::vector<serve::LoggedPrediction>& rows) {
    if (rows.empty()) return;
    job.data.push_back(DataSource{role, path, sha, count, rows.front().record.time_ms,
                                  rows.back().record.time_ms});
  };
  // The run is in the job's record as soon as it exists: a job that dies
  // while training leaves a run its record names (ended at the takeover).
  const RunStarted record_run = [&](const std::string& run_id) {
    job.run_id = run_id;
    UpdateJob(*env.db, job).IgnoreError();  // written again with the challenger
  };
  Result<Trained> trained_result = Internal("not trained");
  if (request.continuous) {
    if (!champion) return failed(FailedPrecondition("no " + policy.promote + " to update"));
    // Updated on the window's rows (minus the holdout), nothing else.
    const std::string sha = RowsSha256(*window);
    add_rows("window", "new labeled predictions of " + policy.model, sha, window->size(), *window);
    add_rows("holdout", "newest labeled predictions of " + policy.model, RowsSha256(holdout),
             holdout.size(), holdout);
    if (Status s = UpdateJob(*env.db, job); !s.ok()) return failed(s);
    status_line("job " + std::to_string(job.id) + ": updating version " + job.champion_version +
                " on " + std::to_string(window->size()) + " new rows, holdout " +
                std::to_string(holdout.size()) + " rows");
    Result<Trained> updated = TrainContinued(
        policy, job, job_dir, *champion, *window,
        std::to_string(window->size()) + " new labeled predictions of " + policy.model, sha,
        experiment_id, env, cancel, record_run);
    if (!updated.ok()) return failed(updated.status());
    trained_result = *updated;
  } else {
    // Data.
    const fs::path data_csv = job_dir / "train.csv";
    Result<TrainingData> written = WriteTrainingData(
        policy, *window, champion ? champion->info.classes : std::vector<std::string>{}, data_csv);
    if (!written.ok()) return failed(written.status());
    const TrainingData data = *written;
    if (!policy.train.data.empty()) {
      job.data.push_back(
          DataSource{"data", policy.train.data, data.data_sha256, data.base_rows, 0, 0});
    }
    add_rows("window", "labeled predictions of " + policy.model, RowsSha256(*window),
             data.window_rows, *window);
    add_rows("holdout", "newest labeled predictions of " + policy.model, RowsSha256(holdout),
             holdout.size(), holdout);
    if (Status s = UpdateJob(*env.db, job); !s.ok()) return failed(s);
    status_line("job " + std::to_string(job.id) + ": training on " +
                std::to_string(data.base_rows + data.window_rows) + " rows (" +
                std::to_string(data.window_rows) + " from the window), holdout " +
                std::to_string(holdout.size()) + " rows");
    trained_result =
        policy.train.command.empty()
            ? TrainWithKeel(policy, job, job_dir, data, experiment_id, env, cancel, record_run)
            : TrainWithCommand(policy, job, job_dir, data_csv, experiment_id, env, cancel,
                               record_run);
  }

  // Register the challenger.
  const Result<Trained>& trained = trained_result;
  if (!trained.ok()) return failed(trained.status());
  job.run_id = trained->run_id;
  job.challenger_version = trained->version;
  status_line("job " + std::to_string(job.id) + ": registered " + policy.model + " version " +
              job.challenger_version + " (run " + job.run_id + ")");
  if (Status s = UpdateJob(*env.db, job); !s.ok()) return failed(s);
  if (trained->version_status != "READY") {
    return failed(FailedPrecondition("the challenger (version " + trained->version + ") is " +
                                     trained->version_status));
  }
  const registry::ChangeContext context{
      request.actor, "retrain job " + std::to_string(job.id) + " (" + request.trigger + ")"};
  if (Status s =
          env.registry->SetAlias(policy.model, "challenger", job.challenger_version, context);
      !s.ok()) {
    return failed(s);
  }
  if (cancel.load()) return failed(Unavailable("cancelled before the gate"));

  // Gate.
  Result<std::shared_ptr<const model::LoadedModel>> challenger =
      LoadVersion(env, policy.model, job.challenger_version);
  if (!challenger.ok()) return failed(challenger.status());
  Result<GateDecision> decision = EvaluateGate(policy.gate, champion.get(), **challenger, holdout);
  if (!decision.ok()) return failed(decision.status());
  job.gate = *decision;
  if (!decision->passed) return finish("rejected", decision->reason);
  if (cancel.load()) return failed(Unavailable("cancelled before promotion"));

  if (policy.shadow.duration_ms > 0 && champion) {
    registry::ChangeContext shadow_context = context;
    shadow_context.reason += ": gate passed, shadow phase";
    if (Status s = env.registry->SetAlias(policy.model, serve::kShadowAlias, job.challenger_version,
                                          shadow_context);
        !s.ok()) {
      return failed(s);
    }
    ShadowReport phase;
    phase.started_ms = clock.NowMillis();
    phase.ends_ms = phase.started_ms + policy.shadow.duration_ms;
    job.shadow = phase;
    return finish("shadow", "gate passed (" + decision->reason + "); version " +
                                job.challenger_version + " scores live traffic in shadow for " +
                                monitor::FormatDuration(policy.shadow.duration_ms) +
                                " and at least " +
                                std::to_string(std::max<uint64_t>(1, policy.shadow.min_requests)) +
                                " requests before promotion");
  }

  registry::ChangeContext promote_context = context;
  promote_context.reason += ": gate passed, " + decision->reason;
  const std::optional<std::string> expected =
      job.champion_version.empty() ? std::nullopt
                                   : std::optional<std::string>(job.champion_version);
  if (Status s = env.registry->SetAliasIf(policy.model, policy.promote, expected,
                                          job.challenger_version, promote_context);
      !s.ok()) {
    if (s.code() == StatusCode::kFailedPrecondition) {
      return finish("rejected",
                    "not promoted: " + s.message() + " (the gate compared with version " +
                        (job.champion_version.empty() ? "none" : job.champion_version) + ")");
    }
    return failed(s);
  }
  return finish("promoted",
                policy.promote + " -> version " + job.challenger_version +
                    (job.champion_version.empty() ? "" : " (was " + job.champion_version + ")") +
                    ": " + decision->reason);
}

// ------------------------------------------------------------------ shadow

namespace {

// A logged output (a JSON number, null, or an array of them) into `out`;
// null elements are NaN. False when it is not k values.
bool ParseOutputs(std::string_view json_text, size_t k, std::vector<float>& out) {
  out.clear();
  std::string_view t = json_text;
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\n')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\n')) v.remove_suffix(1);
    return v;
  };
  t = trim(t);
  auto one = [&](std::string_view v) {
    v = trim(v);
    if (v == "null") {
      out.push_back(std::numeric_limits<float>::quiet_NaN());
      return true;
    }
    const std::string text(v);
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) return false;
    out.push_back(static_cast<float>(d));
    return true;
  };
  if (!t.empty() && t.front() == '[') {
    if (t.back() != ']') return false;
    t = t.substr(1, t.size() - 2);
    while (!t.empty()) {
      const size_t comma = t.find(',');
      if (!one(t.substr(0, comma))) return false;
      if (comma == std::string_view::npos) break;
      t.remove_prefix(comma + 1);
    }
  } else if (!one(t)) {
    return false;
  }
  return out.size() == k;
}

size_t ArgMax(const float* v, size_t k) {
  return static_cast<size_t>(std::max_element(v, v + k) - v);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

Result<ShadowReport> CompareShadow(const GateConfig& gate, const model::LoadedModel& champion,
                                   const std::string& champion_version,
                                   const model::LoadedModel& challenger,
                                   const std::vector<serve::ShadowPair>& pairs) {
  const std::string task = challenger.info.task.empty() ? "binary" : challenger.info.task;
  if (champion.info.task != challenger.info.task) {
    return FailedPrecondition("the champion's task (" + champion.info.task +
                              ") differs from the challenger's (" + challenger.info.task + ")");
  }
  const bool regression = task == "regression";
  const auto k_chal = static_cast<size_t>(challenger.predictor.num_outputs());
  const auto k_champ = static_cast<size_t>(champion.predictor.num_outputs());
  ShadowReport r;
  Scored chal, champ;
  chal.outputs_per_row = static_cast<int>(k_chal);
  champ.outputs_per_row = static_cast<int>(k_champ);
  std::vector<float> labels, a, b;
  std::vector<double> latencies;
  uint64_t agree = 0, compared = 0, diff_n = 0;
  double diff_sum = 0;
  std::string first_error;
  for (const serve::ShadowPair& p : pairs) {
    if (p.champion_version != champion_version) continue;
    ++r.requests;
    if (!p.error.empty()) {
      ++r.errors;
      if (first_error.empty()) first_error = "request " + p.request_id + ": " + p.error;
      continue;
    }
    if (!ParseOutputs(p.shadow_output, k_chal, b) ||
        std::any_of(b.begin(), b.end(), [](float v) { return !std::isfinite(v); })) {
      ++r.non_finite;
      continue;
    }
    latencies.push_back(p.shadow_latency_us);
    // A champion answer that is not k finite values cannot be compared.
    if (!ParseOutputs(p.champion_output, k_champ, a) ||
        std::any_of(a.begin(), a.end(), [](float v) { return !std::isfinite(v); })) {
      continue;
    }
    ++compared;
    if (k_chal == k_champ) {
      for (size_t j = 0; j < k_chal; ++j) diff_sum += std::fabs(double(a[j]) - double(b[j]));
      diff_n += k_chal;
      if (!regression) {
        const bool same = k_chal == 1 ? (a[0] >= 0.5f) == (b[0] >= 0.5f)
                                      : ArgMax(a.data(), k_chal) == ArgMax(b.data(), k_chal);
        agree += same ? 1 : 0;
      }
    }
    if (!p.label_json) continue;
    const std::optional<float> label = LabelValue(*p.label_json, regression, challenger, &champion);
    if (!label) continue;
    labels.push_back(*label);
    chal.outputs.insert(chal.outputs.end(), b.begin(), b.end());
    champ.outputs.insert(champ.outputs.end(), a.begin(), a.end());
  }
  r.labeled_rows = labels.size();
  if (!regression && compared > 0 && k_chal == k_champ) {
    r.agreement = static_cast<double>(agree) / static_cast<double>(compared);
  }
  if (diff_n > 0) r.mean_abs_diff = diff_sum / static_cast<double>(diff_n);
  r.latency_p50_us = Percentile(latencies, 0.5);
  r.latency_p99_us = Percentile(latencies, 0.99);
  if (r.labeled_rows >= gate.min_rows && r.labeled_rows > 0) {
    GateDecision d;
    d.metric = gate.metric.empty() ? DefaultMetric(task) : gate.metric;
    KEEL_ASSIGN_OR_RETURN(GateDecision live,
                          Decide(gate, task, std::move(d), chal, &champ, labels, "live"));
    r.live = std::move(live);
  }
  const std::string n = std::to_string(r.requests);
  auto pct = [](double v) { return FormatDouble(std::round(v * 1000) / 10) + "%"; };
  if (r.requests == 0) {
    r.reason = "no shadowed request to compare";
  } else if (r.errors > 0) {
    r.reason = "the challenger could not score " + std::to_string(r.errors) + " of " + n +
               " shadowed requests (first: " + first_error + ")";
  } else if (r.non_finite > 0) {
    r.reason = "the challenger gave non-finite outputs for " + std::to_string(r.non_finite) +
               " of " + n + " shadowed requests";
  } else if (r.live && !r.live->passed) {
    r.reason = "on " + std::to_string(r.labeled_rows) + " labeled live rows: " + r.live->reason;
  } else {
    r.passed = true;
    r.reason =
        n + " shadowed requests scored" +
        (std::isfinite(r.agreement) ? ", agreement " + pct(r.agreement) : std::string()) +
        (std::isfinite(r.mean_abs_diff) ? ", mean |difference| " + FormatDouble(r.mean_abs_diff)
                                        : std::string()) +
        (r.live
             ? "; on " + std::to_string(r.labeled_rows) + " labeled live rows: " + r.live->reason
             : "; " + std::to_string(r.labeled_rows) + " labeled rows, fewer than gate.min_rows " +
                   std::to_string(gate.min_rows) + ": the holdout's verdict stands");
  }
  return r;
}

namespace {

// The version holding the model's shadow alias, if any.
Result<std::optional<std::string>> ShadowHolder(registry::RegistryService& registry,
                                                const std::string& model) {
  Result<registry::ModelVersion> v = registry.GetVersionByAlias(model, serve::kShadowAlias);
  if (v.ok()) return std::optional<std::string>(v->version);
  const StatusCode code = v.status().code();
  if (code == StatusCode::kInvalidArgument || code == StatusCode::kNotFound) {
    return std::optional<std::string>();
  }
  return v.status();
}

// Ends a job's shadow phase without a decision (cancelled or superseded):
// claimed from status `shadow` first, so a phase decided or ended
// meanwhile is left as it is; then the alias goes if it still names this
// job's challenger. Returns whether this call ended it.
Result<bool> EndShadowPhase(const RetrainEnv& env, RetrainJob job, const std::string& status,
                            const std::string& message, const registry::ChangeContext& context) {
  job.status = status;
  job.finished_ms = env.clock->NowMillis();
  job.message = message;
  AppendJobLog(job, job.finished_ms,
               "job " + std::to_string(job.id) + " " + status + ": " + message);
  KEEL_ASSIGN_OR_RETURN(bool claimed, UpdateJobIf(*env.db, job, "shadow"));
  if (!claimed) return false;
  Status s =
      env.registry->DeleteAliasIf(job.model, serve::kShadowAlias, job.challenger_version, context);
  if (!s.ok() && s.code() != StatusCode::kFailedPrecondition) return s;
  return true;
}

}  // namespace

Result<std::optional<RetrainJob>> FinishShadow(const RetrainPolicy& policy, const RetrainEnv& env) {
  if (env.db == nullptr || env.registry == nullptr || env.clock == nullptr || !env.model_path) {
    return InvalidArgument("RetrainEnv needs db, registry, clock and model_path");
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<RetrainJob> jobs,
                        JobsInStatus(*env.db, policy.model, "shadow"));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> held, ShadowHolder(*env.registry, policy.model));
  const int64_t now = env.clock->NowMillis();
  if (held && std::none_of(jobs.begin(), jobs.end(),
                           [&](const RetrainJob& j) { return j.challenger_version == *held; })) {
    // An alias no job in its phase owns: left by a job whose record could
    // not be finished, or set by hand. Removed once no job is running for
    // that version (a running job sets the alias just before its record).
    KEEL_ASSIGN_OR_RETURN(std::vector<RetrainJob> running,
                          JobsInStatus(*env.db, policy.model, "running"));
    if (std::none_of(running.begin(), running.end(),
                     [&](const RetrainJob& j) { return j.challenger_version == *held; })) {
      KEEL_RETURN_IF_ERROR(env.registry->DeleteAliasIf(
          policy.model, serve::kShadowAlias, *held,
          {kShadowActor, "no retraining job is in its shadow phase with version " + *held}));
      held.reset();
    }
  }
  std::optional<RetrainJob> decided;
  for (RetrainJob& job : jobs) {
    if (!job.shadow) {
      job.shadow.emplace();
      job.shadow->started_ms = job.shadow->ends_ms = job.started_ms;
    }
    const registry::ChangeContext end_context{kShadowActor,
                                              "retrain job " + std::to_string(job.id)};
    if (held != job.challenger_version) {
      // Moved to a newer challenger, or removed (by hand, or a cancel that
      // could not update the record).
      if (held) {
        KEEL_RETURN_IF_ERROR(
            EndShadowPhase(env, job, "superseded",
                           "the shadow alias moved to version " + *held + " before a decision",
                           end_context)
                .status());
      } else {
        KEEL_RETURN_IF_ERROR(EndShadowPhase(env, job, "cancelled",
                                            "the shadow alias was removed before a decision",
                                            end_context)
                                 .status());
      }
      continue;
    }
    if (policy.shadow.duration_ms <= 0) {
      // The policy no longer has a shadow phase: the phase ends undecided.
      KEEL_RETURN_IF_ERROR(
          EndShadowPhase(env, job, "cancelled",
                         "the policy has no shadow phase any more; the champion is unchanged",
                         end_context)
              .status());
      continue;
    }
    if (now < job.shadow->ends_ms) continue;
    serve::ShadowQuery q;
    q.model = policy.model;
    q.shadow_version = job.challenger_version;
    q.champion_version = job.champion_version;
    q.from_ms = job.shadow->started_ms;
    q.to_ms = now + 1;
    KEEL_ASSIGN_OR_RETURN(uint64_t compared, serve::CountShadowPairs(*env.db, q));
    if (compared < std::max<uint64_t>(1, policy.shadow.min_requests)) continue;  // wait
    KEEL_ASSIGN_OR_RETURN(std::vector<serve::ShadowPair> pairs, serve::ReadShadowPairs(*env.db, q));
    KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> champion,
                          LoadVersion(env, policy.model, job.champion_version));
    KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> challenger,
                          LoadVersion(env, policy.model, job.challenger_version));
    KEEL_ASSIGN_OR_RETURN(
        ShadowReport report,
        CompareShadow(policy.gate, *champion, job.champion_version, *challenger, pairs));
    report.started_ms = job.shadow->started_ms;
    report.ends_ms = job.shadow->ends_ms;

    // Claim the decision (from `shadow` to `running`, this process): a
    // cancel or another replica that got there first wins. A crash from
    // here on leaves the job to MarkInterruptedJobs.
    RetrainJob claimed = job;
    claimed.status = "running";
    claimed.host = HostName();
    claimed.pid = static_cast<int64_t>(::getpid());
    KEEL_ASSIGN_OR_RETURN(bool mine, UpdateJobIf(*env.db, claimed, "shadow"));
    if (!mine) continue;
    job = claimed;
    job.shadow = report;
    const registry::ChangeContext context{
        job.actor, "retrain job " + std::to_string(job.id) + " (" + job.trigger + "): shadow " +
                       (report.passed ? "passed" : "failed") + ", " + report.reason};
    // The comparison and the outcome go to the log together, when the
    // decision is recorded (a store error below puts the phase back and the
    // next call decides again).
    auto end = [&](const std::string& status, const std::string& message) -> Status {
      AppendJobLog(job, now,
                   "job " + std::to_string(job.id) + ": shadow phase compared " +
                       std::to_string(report.requests) + " requests (" +
                       (report.passed ? "passed" : "failed") + ": " + report.reason + ")");
      job.status = status;
      job.message = message;
      job.finished_ms = env.clock->NowMillis();
      AppendJobLog(job, job.finished_ms,
                   "job " + std::to_string(job.id) + " " + status + ": " + message);
      return UpdateJobIf(*env.db, job, "running").status();
    };
    // The phase ends before the decision takes effect, and only while the
    // alias still names this challenger.
    if (Status s = env.registry->DeleteAliasIf(policy.model, serve::kShadowAlias,
                                               job.challenger_version, context);
        !s.ok()) {
      if (s.code() == StatusCode::kFailedPrecondition) {
        KEEL_RETURN_IF_ERROR(
            end("superseded", "the shadow alias moved before the decision: " + s.message()));
        continue;
      }
      // A store error: back to the phase, decided again at the next call.
      job.status = "shadow";
      UpdateJobIf(*env.db, job, "running").status().IgnoreError();
      return s;
    }
    if (!report.passed) {
      KEEL_RETURN_IF_ERROR(end("rejected", "shadow: " + report.reason));
    } else {
      Status moved = env.registry->SetAliasIf(policy.model, policy.promote, job.champion_version,
                                              job.challenger_version, context);
      if (moved.ok()) {
        KEEL_RETURN_IF_ERROR(
            end("promoted", policy.promote + " -> version " + job.challenger_version + " (was " +
                                job.champion_version + "): shadow passed, " + report.reason));
      } else {
        // Moved meanwhile (rejected), or a store error (failed): either way
        // the champion is untouched.
        KEEL_RETURN_IF_ERROR(
            end(moved.code() == StatusCode::kFailedPrecondition ? "rejected" : "failed",
                "not promoted after the shadow: " + moved.message() +
                    " (the gate compared with version " + job.champion_version + ")"));
      }
    }
    decided = job;
  }
  return decided;
}

Result<int> CancelShadow(store::Database& db, registry::RegistryService& registry,
                         const Clock& clock, const std::string& model,
                         const registry::ChangeContext& context) {
  KEEL_ASSIGN_OR_RETURN(std::vector<RetrainJob> jobs, JobsInStatus(db, model, "shadow"));
  RetrainEnv env;
  env.db = &db;
  env.registry = &registry;
  env.clock = &clock;
  int ended = 0;
  for (const RetrainJob& job : jobs) {
    KEEL_ASSIGN_OR_RETURN(
        bool mine, EndShadowPhase(env, job, "cancelled",
                                  "cancelled by " + context.actor + " during the shadow phase" +
                                      (context.reason.empty() ? "" : " (" + context.reason + ")"),
                                  context));
    ended += mine ? 1 : 0;
  }
  return ended;
}

Result<std::optional<WatchOutcome>> WatchPromotion(const RetrainPolicy& policy,
                                                   const RetrainEnv& env) {
  if (policy.watch.duration_ms <= 0) return std::optional<WatchOutcome>();
  if (env.db == nullptr || env.registry == nullptr || env.clock == nullptr || !env.model_path) {
    return InvalidArgument("RetrainEnv needs db, registry, clock and model_path");
  }
  const int64_t now = env.clock->NowMillis();
  Result<std::vector<registry::AliasChange>> history =
      env.registry->AliasHistory(policy.model, policy.promote);
  if (!history.ok()) {
    // No such model yet: nothing promoted, nothing to watch.
    if (history.status().code() == StatusCode::kNotFound) return std::optional<WatchOutcome>();
    return history.status();
  }
  if (history->empty()) return std::optional<WatchOutcome>();
  const registry::AliasChange& change = history->front();
  if (!change.to_version || !change.from_version || change.actor == kWatchActor ||
      now >= change.time + policy.watch.duration_ms) {
    return std::optional<WatchOutcome>();
  }
  // A change that undoes the one before (a rollback, by hand or by
  // Rollback) is a decision to return, not a promotion to judge.
  if (history->size() >= 2) {
    const registry::AliasChange& earlier = (*history)[1];
    if (earlier.from_version == change.to_version && earlier.to_version == change.from_version) {
      return std::optional<WatchOutcome>();
    }
  }
  const std::string& fresh = *change.to_version;
  const std::string& before = *change.from_version;

  serve::PredictionQuery q;
  q.model = policy.model;
  q.version = fresh;
  q.from_ms = change.time;
  q.to_ms = now + 1;
  q.labelled_only = true;
  q.limit = 200'000;
  q.newest = true;
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::LoggedPrediction> rows,
                        serve::ReadPredictions(*env.db, q));
  if (rows.size() < policy.gate.min_rows) return std::optional<WatchOutcome>();
  KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> fresh_model,
                        LoadVersion(env, policy.model, fresh));
  KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> before_model,
                        LoadVersion(env, policy.model, before));
  GateConfig g = policy.gate;
  if (!policy.watch.metric.empty()) g.metric = policy.watch.metric;
  // Scored with the version under watch in the challenger's seat (its
  // non-finite outputs are counted there), then written the other way round:
  // in the record "champion" is the version under watch and "challenger"
  // the one the alias would return to.
  KEEL_ASSIGN_OR_RETURN(GateDecision d, EvaluateGate(g, before_model.get(), *fresh_model, rows));
  if (d.holdout_rows < g.min_rows) return std::optional<WatchOutcome>();  // not enough yet
  // (EvaluateGate stops before the metrics when the challenger's outputs are
  // not all finite.)
  if (d.non_finite == 0 && !std::isfinite(d.champion)) {
    return std::optional<WatchOutcome>();  // the version before gives nothing to compare with
  }
  std::swap(d.champion, d.challenger);
  for (GateMetric& m : d.metrics) std::swap(m.champion, m.challenger);
  const bool broken = d.non_finite > 0 || !std::isfinite(d.champion);
  const double drop = broken                            ? std::numeric_limits<double>::infinity()
                      : train::HigherIsBetter(d.metric) ? d.challenger - d.champion
                                                        : d.champion - d.challenger;
  if (!(drop > policy.watch.drop_more_than)) return std::optional<WatchOutcome>();

  WatchOutcome out;
  out.rolled_back = true;
  RetrainJob& job = out.job;
  job.model = policy.model;
  job.trigger = "watch";
  job.actor = kWatchActor;
  job.status = "running";
  job.started_ms = now;
  job.promote_alias = policy.promote;
  job.champion_version = fresh;     // what the alias held before the rollback
  job.challenger_version = before;  // what it returns to
  job.host = HostName();
  job.pid = static_cast<int64_t>(::getpid());
  d.passed = false;
  if (broken) {
    d.reason = "version " + fresh + " gave " + std::to_string(d.non_finite) +
               " non-finite outputs (" + d.metric + " " + FormatDouble(d.champion) + ") on " +
               std::to_string(d.holdout_rows) + " live rows since the change";
  } else {
    d.reason = d.metric + " " + FormatDouble(d.champion) + " for version " + fresh + " vs " +
               FormatDouble(d.challenger) + " for version " + before + " on the same " +
               std::to_string(d.holdout_rows) + " live rows since the change: a drop of " +
               FormatDouble(drop) + " > watch.rollback_if.drop_more_than " +
               FormatDouble(policy.watch.drop_more_than);
  }
  job.gate = d;
  KEEL_RETURN_IF_ERROR(InsertJob(*env.db, job, /*continuous=*/false));
  const registry::ChangeContext context{
      kWatchActor, "watch rolled back (job " + std::to_string(job.id) + "): " + d.reason};
  Status moved = env.registry->SetAliasIf(policy.model, policy.promote, fresh, before, context);
  job.finished_ms = env.clock->NowMillis();
  if (moved.ok()) {
    job.status = "rolled_back";
    job.message = policy.promote + " -> version " + before + " (was " + fresh + "): " + d.reason;
  } else {
    job.status = moved.code() == StatusCode::kFailedPrecondition ? "rejected" : "failed";
    job.message = "no rollback: " + moved.message();
    out.rolled_back = false;
  }
  AppendJobLog(job, job.finished_ms,
               "job " + std::to_string(job.id) + " " + job.status + ": " + job.message);
  // Once the alias moved, the outcome (and its alert) is returned even if
  // the record cannot be completed: the rollback must not go unannounced.
  if (Status s = UpdateJob(*env.db, job); !s.ok())
    job.message += " (record not updated: " + s.message() + ")";
  if (out.rolled_back) {
    monitor::Alert& a = out.alert;
    a.model = policy.model;
    a.version = fresh;
    a.rule = "watch_rollback";
    a.severity = "critical";
    a.metric = "performance." + d.metric + ".drop";
    a.op = ">";
    a.value = std::isfinite(drop) ? drop : std::numeric_limits<double>::max();
    a.threshold = policy.watch.drop_more_than;
    a.window_ms = now - change.time;
    a.first_ms = now;
    a.last_ms = now;
    a.summary = policy.model + "@" + policy.promote + " rolled back from version " + fresh +
                " to " + before + ": " + d.reason;
  }
  return std::optional<WatchOutcome>(std::move(out));
}

Result<std::vector<RetrainJob>> RetrainHistory(store::Database& db, const std::string& model,
                                               size_t limit) {
  std::vector<RetrainJob> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    const std::string sql = std::string("SELECT details FROM retrain_jobs") +
                            (model.empty() ? "" : " WHERE model = ?") +
                            " ORDER BY job_id DESC LIMIT ?";
    auto each = [&](const store::RowView& row) -> Status {
      Result<RetrainJob> job = RetrainJob::FromJson(row.Text(0));
      if (!job.ok()) return job.status();
      out.push_back(std::move(job).value());
      return OkStatus();
    };
    if (model.empty()) return c.Query(sql, {store::Value(static_cast<int64_t>(limit))}, each);
    return c.Query(sql, {store::Value(model), store::Value(static_cast<int64_t>(limit))}, each);
  }));
  return out;
}

namespace {

// What a job that died left behind (it was just marked failed or cancelled):
// its run, if still RUNNING, ends FAILED; a version of that run left
// PENDING_REGISTRATION becomes FAILED_REGISTRATION; a version the run
// registered before the job could record it is named in the job's record
// (never gated; no alias but `challenger` may name it); and a job that had
// moved its `promote` alias to its challenger (the alias history's latest
// change, made by this job) before dying is recorded `promoted`, which is
// returned (true: the caller drops its rerun). Best effort: a store error
// leaves the rest undone, and is returned.
Result<bool> EndInterruptedWork(store::Database& db, int64_t job_id, int64_t now_ms) {
  std::optional<RetrainJob> job;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query("SELECT details FROM retrain_jobs WHERE job_id = ?", {store::Value(job_id)},
                   [&](const store::RowView& row) -> Status {
                     Result<RetrainJob> j = RetrainJob::FromJson(row.Text(0));
                     if (j.ok()) job = std::move(j).value();
                     return OkStatus();
                   });
  }));
  if (!job || job->run_id.empty()) return false;
  const Clock& clock = SystemClock::Default();
  tracking::TrackingService tracking(db, clock, {});
  Result<tracking::Run> run = tracking.GetRun(job->run_id);
  if (run.ok() && run->info.status == "RUNNING") {
    tracking::UpdateRunRequest end;
    end.run_id = job->run_id;
    end.status = "FAILED";
    end.end_time = now_ms;
    KEEL_RETURN_IF_ERROR(tracking.UpdateRun(end).status());
  }
  registry::RegistryService registry(db, clock);
  registry::SearchRequest search;
  search.filter = "run_id = '" + job->run_id + "'";
  Result<registry::ModelVersionsPage> versions = registry.SearchModelVersions(search);
  if (!versions.ok()) return versions.status();
  std::string named;
  for (const registry::ModelVersion& v : versions->versions) {
    if (v.name != job->model) continue;
    if (v.status == "PENDING_REGISTRATION") {
      KEEL_RETURN_IF_ERROR(registry
                               .AbandonPendingVersion(v.name, v.version,
                                                      "interrupted: retrain job " +
                                                          std::to_string(job->id) +
                                                          " stopped while registering it")
                               .status());
    } else if (v.status == "READY" && job->challenger_version.empty()) {
      named = v.version;
    }
  }
  bool promoted = false;
  if (!named.empty()) {
    job->challenger_version = named;
    job->message +=
        "; its run had registered version " + named + ", never gated (the champion is untouched)";
  } else if (!job->challenger_version.empty() && !job->promote_alias.empty()) {
    // A change of the alias by this job to its challenger, wherever it is in
    // the history (the watch or a person may have moved it since).
    Result<std::vector<registry::AliasChange>> history =
        registry.AliasHistory(job->model, job->promote_alias);
    const std::string by_this_job = "retrain job " + std::to_string(job->id) + " (";
    if (history.ok()) {
      for (size_t i = 0; i < history->size() && !promoted; ++i) {
        const registry::AliasChange& change = (*history)[i];
        if (change.to_version != job->challenger_version ||
            change.reason.rfind(by_this_job, 0) != 0) {
          continue;
        }
        promoted = true;
        job->status = "promoted";
        job->finished_ms = change.time;
        job->message = job->promote_alias + " -> version " + job->challenger_version +
                       (change.from_version ? " (was " + *change.from_version + ")" : "") +
                       " before its process stopped (recorded at the takeover): " + change.reason +
                       (i > 0 ? "; the alias has changed since" : "");
      }
    }
  }
  if (named.empty() && !promoted) return false;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) {
    return c.Exec(
        "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? AND "
        "status IN ('failed', 'cancelled')",
        {store::Value(job->status), store::Value(job->finished_ms), store::Value(job->ToJson()),
         store::Value(job->id)});
  }));
  return promoted;
}

}  // namespace

Result<int> MarkInterruptedJobs(store::Database& db, int64_t now_ms) {
  std::vector<RetrainJob> running;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query("SELECT details FROM retrain_jobs WHERE status = 'running'", {},
                   [&](const store::RowView& row) -> Status {
                     Result<RetrainJob> job = RetrainJob::FromJson(row.Text(0));
                     if (job.ok()) running.push_back(std::move(job).value());
                     return OkStatus();
                   });
  }));
  const std::string host = HostName();
  int marked = 0;
  for (RetrainJob& job : running) {
    // Still running somewhere: another host (its own business), or a live
    // process here.
    if (job.host != host) continue;
    if (job.pid > 0 && (::kill(static_cast<pid_t>(job.pid), 0) == 0 || errno == EPERM)) continue;
    // Re-read and update in one transaction, only while still running: the
    // job may have finished between the read above and now.
    bool updated = false;
    KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
      std::optional<RetrainJob> now;
      std::string cancel_requested;
      KEEL_RETURN_IF_ERROR(c.Query(
          "SELECT details, cancel_requested FROM retrain_jobs WHERE job_id = ? AND status = "
          "'running'",
          {store::Value(job.id)}, [&](const store::RowView& row) -> Status {
            Result<RetrainJob> j = RetrainJob::FromJson(row.Text(0));
            if (j.ok()) now = std::move(j).value();
            cancel_requested = std::string(row.Text(1));
            return OkStatus();
          }));
      if (!now) return OkStatus();
      const std::string before = now->message.empty() ? "" : " (" + now->message + ")";
      now->finished_ms = now_ms;
      if (!cancel_requested.empty()) {
        now->status = "cancelled";
        now->message = "cancelled by " + cancel_requested +
                       "; the process running the job stopped before it did" + before;
      } else {
        now->status = "failed";
        now->message = "interrupted: the process running the job stopped" + before;
      }
      updated = true;
      return c.Exec(
          "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? "
          "AND status = 'running'",
          {store::Value(now->status), store::Value(now->finished_ms), store::Value(now->ToJson()),
           store::Value(now->id)});
    }));
    if (updated) {
      ++marked;
      EndInterruptedWork(db, job.id, now_ms).status().IgnoreError();  // best effort, after the mark
    }
  }
  return marked;
}

Status HeartbeatJobs(store::Database& db, int64_t now_ms) {
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) {
    return c.Exec(
        "UPDATE retrain_jobs SET heartbeat = ? WHERE status IN ('running', 'queued') AND "
        "owner = ?",
        {store::Value(now_ms), store::Value(JobOwner())});
  }));
  // Then the final records this process could not write (after the beat: a
  // slow store delays them, not the heartbeats).
  std::vector<Unwritten> unwritten;
  {
    std::lock_guard<std::mutex> lock(g_unwritten_mu);
    auto here = std::stable_partition(g_unwritten.begin(), g_unwritten.end(),
                                      [&](const Unwritten& u) { return u.store_uri != db.uri(); });
    unwritten.assign(std::make_move_iterator(here), std::make_move_iterator(g_unwritten.end()));
    g_unwritten.erase(here, g_unwritten.end());
  }
  Status first_error;
  for (Unwritten& u : unwritten) {
    Status s = first_error.ok() ? UpdateJob(db, u.job) : first_error;
    if (!s.ok() && s.code() != StatusCode::kFailedPrecondition) {
      if (first_error.ok()) first_error = s;
      std::lock_guard<std::mutex> lock(g_unwritten_mu);
      g_unwritten.push_back(std::move(u));  // next time
    }
  }
  return first_error;
}

namespace {

// Marks other processes' running jobs whose heartbeat is older than
// `stale_before_ms` failed ("interrupted: its process ... stopped renewing"),
// or `cancelled` when a cancel request is pending on them, within the
// caller's transaction: the jobs it marked failed (to run again), each with
// its continuous column.
Status TakeOverStaleRunning(store::Connection& c, int64_t now_ms, int64_t stale_before_ms,
                            std::vector<std::pair<RetrainJob, bool>>& taken,
                            std::vector<int64_t>& ended) {
  taken.clear();
  ended.clear();
  struct Stale {
    RetrainJob job;
    std::string owner;
    bool continuous;
    std::string cancel_requested;
  };
  std::vector<Stale> stale;
  KEEL_RETURN_IF_ERROR(
      c.Query("SELECT details, owner, continuous, cancel_requested FROM retrain_jobs WHERE "
              "status = 'running' AND heartbeat > 0 AND heartbeat < ? AND owner <> ? ORDER BY "
              "job_id",
              {store::Value(stale_before_ms), store::Value(JobOwner())},
              [&](const store::RowView& row) -> Status {
                Result<RetrainJob> job = RetrainJob::FromJson(row.Text(0));
                std::string owner(row.Text(1));
                // A live process of this host is slow, not gone: its job stays its own.
                if (job.ok() && !OwnerAliveHere(owner)) {
                  stale.push_back({std::move(job).value(), std::move(owner), row.Int(2) != 0,
                                   std::string(row.Text(3))});
                }
                return OkStatus();
              }));
  for (Stale& s : stale) {
    RetrainJob& job = s.job;
    job.finished_ms = now_ms;
    const std::string why = "its process (" + s.owner + ") stopped renewing the job's heartbeat";
    const std::string before = job.message.empty() ? std::string() : " (" + job.message + ")";
    if (!s.cancel_requested.empty()) {
      // Asked to stop: it ends so, not run again.
      job.status = "cancelled";
      job.message =
          "cancelled by " + s.cancel_requested + "; " + why + " before it stopped" + before;
    } else {
      job.status = "failed";
      job.message = "interrupted: " + why + "; the job runs again" + before;
    }
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? "
        "AND status = 'running'",
        {store::Value(job.status), store::Value(job.finished_ms), store::Value(job.ToJson()),
         store::Value(job.id)}));
    if (c.ChangedRows() == 0) continue;
    ended.push_back(job.id);
    if (job.status == "failed") taken.emplace_back(job, s.continuous);
  }
  return OkStatus();
}

}  // namespace

Status QueueJob(store::Connection& c, QueuedJob& job, int64_t now_ms) {
  RetrainJob row;
  row.model = job.model;
  row.trigger = job.trigger;
  row.actor = job.actor;
  row.status = "queued";
  row.started_ms = now_ms;  // when it was queued, until it starts
  row.host = HostName();
  row.pid = static_cast<int64_t>(::getpid());
  KEEL_RETURN_IF_ERROR(InsertJobRow(c, row, job.attempt, job.not_before_ms, job.continuous));
  job.id = row.id;
  return OkStatus();
}

Result<bool> DropQueuedJob(store::Database& db, int64_t id) {
  bool dropped = false;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(
        c.Exec("DELETE FROM retrain_jobs WHERE job_id = ? AND status = 'queued' AND owner = ?",
               {store::Value(id), store::Value(JobOwner())}));
    dropped = c.ChangedRows() > 0;
    return OkStatus();
  }));
  return dropped;
}

namespace {

// Ends queued row `id` (this process's when `owner` is given, anyone's
// otherwise) with `status` and `message`, within the caller's transaction.
// Returns whether it did (a row no longer queued is left alone).
Result<bool> EndQueuedRow(store::Connection& c, int64_t id, const std::string* owner,
                          int64_t now_ms, const std::string& status, const std::string& message) {
  const std::string mine = owner != nullptr ? " AND owner = ?" : "";
  std::vector<store::Value> key{store::Value(id)};
  if (owner != nullptr) key.emplace_back(*owner);
  std::optional<RetrainJob> job;
  KEEL_RETURN_IF_ERROR(
      c.Query("SELECT details FROM retrain_jobs WHERE job_id = ? AND status = 'queued'" + mine, key,
              [&](const store::RowView& row) -> Status {
                KEEL_ASSIGN_OR_RETURN(RetrainJob j, RetrainJob::FromJson(row.Text(0)));
                job = std::move(j);
                return OkStatus();
              }));
  if (!job) return false;
  job->status = status;
  job->finished_ms = now_ms;
  job->message = message;
  std::vector<store::Value> args{store::Value(job->status), store::Value(now_ms),
                                 store::Value(job->ToJson())};
  args.insert(args.end(), key.begin(), key.end());
  KEEL_RETURN_IF_ERROR(c.Exec(
      "UPDATE retrain_jobs SET status = ?, finished_time = ?, details = ? WHERE job_id = ? AND "
      "status = 'queued'" +
          mine,
      args));
  return c.ChangedRows() > 0;
}

}  // namespace

Result<bool> EndQueuedJob(store::Database& db, int64_t id, int64_t now_ms,
                          const std::string& status, const std::string& message) {
  bool ended = false;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ended, EndQueuedRow(c, id, &JobOwner(), now_ms, status, message));
    return OkStatus();
  }));
  return ended;
}

namespace {
// A running job whose heartbeat is younger than this counts as alive for
// RequestCancel's count (jobs beat every second).
constexpr int64_t kLiveHeartbeatMs = 30'000;
}  // namespace

Result<CancelRequest> RequestCancel(store::Database& db, const std::string& model,
                                    const std::string& actor, int64_t now_ms) {
  const std::string who = actor.empty() ? std::string("an anonymous caller") : actor;
  CancelRequest out;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    out = CancelRequest{};
    std::vector<int64_t> queued;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT job_id FROM retrain_jobs WHERE model = ? AND status = 'queued' ORDER BY job_id",
        {store::Value(model)}, [&](const store::RowView& row) {
          queued.push_back(row.Int(0));
          return OkStatus();
        }));
    for (int64_t id : queued) {
      KEEL_ASSIGN_OR_RETURN(bool ended, EndQueuedRow(c, id, nullptr, now_ms, "cancelled",
                                                     "cancelled by " + who + " while queued"));
      out.queued += ended ? 1 : 0;
    }
    // Every running row is marked (a dead process's job is then ended
    // `cancelled` by its takeover); those whose process is alive by its
    // heartbeat are counted: they stop.
    KEEL_RETURN_IF_ERROR(
        c.Exec("UPDATE retrain_jobs SET cancel_requested = ? WHERE model = ? AND status = "
               "'running' AND trigger_name <> 'watch'",
               {store::Value(who), store::Value(model)}));
    return c.Query(
        "SELECT COUNT(*) FROM retrain_jobs WHERE model = ? AND status = 'running' AND "
        "trigger_name <> 'watch' AND heartbeat >= ?",
        {store::Value(model), store::Value(now_ms - kLiveHeartbeatMs)},
        [&](const store::RowView& row) {
          out.running = static_cast<int>(row.Int(0));
          return OkStatus();
        });
  }));
  return out;
}

Result<Requeued> RequeueJob(store::Database& db, const QueuedJob& retry) {
  Requeued outcome = Requeued::kNotQueued;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE retrain_jobs SET attempt = ?, not_before = ? WHERE job_id = ? AND "
        "status = 'queued' AND owner = ?",
        {store::Value(static_cast<int64_t>(retry.attempt)), store::Value(retry.not_before_ms),
         store::Value(retry.id), store::Value(JobOwner())}));
    if (c.ChangedRows() > 0) {
      outcome = Requeued::kInPlace;
      return OkStatus();
    }
    // Not requeued: whose is the row now, and is it still to run?
    outcome = Requeued::kCancelled;  // unless found (a row deleted meanwhile)
    return c.Query("SELECT owner, status FROM retrain_jobs WHERE job_id = ?",
                   {store::Value(retry.id)}, [&](const store::RowView& row) {
                     outcome = row.Text(0) != JobOwner()    ? Requeued::kNotMine
                               : row.Text(1) == "cancelled" ? Requeued::kCancelled
                                                            : Requeued::kNotQueued;
                     return OkStatus();
                   });
  }));
  return outcome;
}

Result<std::vector<int64_t>> QueuedRowsGoneElsewhere(store::Database& db,
                                                     const std::vector<int64_t>& ids) {
  std::vector<int64_t> gone;
  if (ids.empty()) return gone;
  std::string marks;
  std::vector<store::Value> args{store::Value(JobOwner())};
  for (int64_t id : ids) {
    marks += marks.empty() ? "?" : ", ?";
    args.emplace_back(id);
  }
  std::vector<int64_t> still_mine;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    still_mine.clear();
    return c.Query(
        "SELECT job_id FROM retrain_jobs WHERE status IN ('queued', 'running') AND "
        "owner = ? AND job_id IN (" +
            marks + ")",
        args, [&](const store::RowView& row) {
          still_mine.push_back(row.Int(0));
          return OkStatus();
        });
  }));
  for (int64_t id : ids) {
    if (std::find(still_mine.begin(), still_mine.end(), id) == still_mine.end()) gone.push_back(id);
  }
  return gone;
}

Result<std::vector<QueuedJob>> TakeOverStaleWork(
    store::Database& db, int64_t now_ms, int64_t stale_before_ms,
    const std::function<bool(const std::string& model)>& runs) {
  std::vector<QueuedJob> out;
  std::vector<int64_t> ended;                       // running jobs marked failed or cancelled
  std::vector<std::pair<int64_t, int64_t>> reruns;  // (job taken over, its rerun's row)
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    out.clear();
    reruns.clear();
    // Running jobs: marked failed, their reruns queued here.
    std::vector<std::pair<RetrainJob, bool>> taken;
    KEEL_RETURN_IF_ERROR(TakeOverStaleRunning(c, now_ms, stale_before_ms, taken, ended));
    for (const auto& [job, continuous] : taken) {
      if (!runs(job.model)) continue;
      QueuedJob rerun;
      rerun.model = job.model;
      rerun.trigger = "takeover of job " + std::to_string(job.id) + " (" + job.trigger + ")";
      rerun.actor = "keel-scheduler";
      // An update stays one (jobs from before the continuous column: by trigger).
      rerun.continuous = continuous || job.trigger.rfind("continuous", 0) == 0;
      KEEL_RETURN_IF_ERROR(QueueJob(c, rerun, now_ms));
      reruns.emplace_back(job.id, rerun.id);
      out.push_back(std::move(rerun));
    }
    // Queued rows: claimed as they are.
    std::vector<std::pair<QueuedJob, std::string>> stale;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT job_id, model, trigger_name, actor, attempt, not_before, continuous, owner FROM "
        "retrain_jobs WHERE status = 'queued' AND heartbeat < ? AND owner <> ? ORDER BY job_id",
        {store::Value(stale_before_ms), store::Value(JobOwner())},
        [&](const store::RowView& row) -> Status {
          std::string owner(row.Text(7));
          if (OwnerAliveHere(owner) || !runs(std::string(row.Text(1)))) return OkStatus();
          QueuedJob q;
          q.id = row.Int(0);
          q.model = std::string(row.Text(1));
          q.trigger = std::string(row.Text(2));
          q.actor = std::string(row.Text(3));
          q.attempt = static_cast<int>(row.Int(4));
          q.not_before_ms = row.Int(5);
          q.continuous = row.Int(6) != 0;
          stale.emplace_back(std::move(q), std::move(owner));
          return OkStatus();
        }));
    for (auto& [q, owner] : stale) {
      KEEL_RETURN_IF_ERROR(
          c.Exec("UPDATE retrain_jobs SET owner = ?, heartbeat = ? WHERE job_id = ? AND "
                 "status = 'queued' AND owner = ?",
                 {store::Value(JobOwner()), store::Value(now_ms), store::Value(q.id),
                  store::Value(owner)}));
      if (c.ChangedRows() > 0) out.push_back(std::move(q));
    }
    return OkStatus();
  }));
  // What the dead jobs left (runs, half-registered versions), once they are
  // marked; a job found to have promoted its challenger is not run again.
  for (int64_t id : ended) {
    Result<bool> promoted = EndInterruptedWork(db, id, now_ms);
    if (!promoted.ok() || !*promoted) continue;
    for (const auto& [taken, rerun] : reruns) {
      if (taken != id) continue;
      // Dropped only while still queued here (a store error leaves it to run:
      // its gate then compares with the promoted version).
      Result<bool> dropped = DropQueuedJob(db, rerun);
      if (dropped.ok() && *dropped) {
        std::erase_if(out, [&](const QueuedJob& q) { return q.id == rerun; });
      }
    }
  }
  return out;
}

}  // namespace keel::retrain
