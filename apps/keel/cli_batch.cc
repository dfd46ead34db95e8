// keel batch: score a CSV file (or stdin) with a registered model (or a local
// package) into a CSV file (or stdout), in chunks, in input order; with
// --distributed, through `keel worker` processes on NATS JetStream.
// keel worker: scores the partitions of distributed batch jobs.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include "apps/keel/cli.h"
#include "keel/batch/batch.h"
#include "keel/batch/distributed.h"
#include "keel/core/clock.h"
#include "keel/core/util.h"
#include "keel/serve/prediction_log.h"

namespace keel::cli {
namespace {

struct BatchFlags {
  std::string model;
  std::string format = "auto";
  batch::BatchOptions options;
  // Tracking and monitoring.
  bool track = true;
  std::string experiment = "batch-scoring";
  std::string run_name;
  double monitor_sample = 0.1;
  CLI::Option* monitor_sample_option = nullptr;
  // Distributed jobs.
  bool distributed = false;
  batch::DistributedOptions dist;
  int64_t stall_timeout_s = 300;
};

// Set by SIGINT/SIGTERM while a job runs: the job stops at the next chunk,
// leaves no output and its run ends KILLED. A second signal ends the process.
std::atomic<bool> g_interrupted{false};

void OnBatchInterrupt(int sig) {
  g_interrupted.store(true);
  std::signal(sig, SIG_DFL);
}

// The progress line on a terminal: rows, rows/s, rejects, and with a known
// input size the share done and an ETA.
std::function<void(const batch::BatchProgress&)> ProgressPrinter() {
  const auto start = std::chrono::steady_clock::now();
  return [start](const batch::BatchProgress& p) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double rate = s > 0 ? static_cast<double>(p.rows) / s : 0;
    std::fprintf(stderr, "\r%llu rows  %.0f rows/s  %llu rejected",
                 static_cast<unsigned long long>(p.rows), rate,
                 static_cast<unsigned long long>(p.rejected));
    if (p.total_bytes > 0 && p.bytes_read > 0) {
      double done =
          std::min(1.0, static_cast<double>(p.bytes_read) / static_cast<double>(p.total_bytes));
      std::fprintf(stderr, "  %3.0f%%  ETA %.0f s", 100 * done, s * (1 - done) / done);
    }
    std::fflush(stderr);
  };
}

// The job's run: started before scoring, ended FINISHED with the counts and
// the input's digest, or FAILED with the error.
class BatchRun {
 public:
  static Result<BatchRun> Start(Transport& t, const BatchFlags& f, const CliModel& m) {
    BatchRun run(MakeApiRecorder(t));
    const std::string run_name = !f.run_name.empty() ? f.run_name
                                 : m.name.empty()
                                     ? "batch-" + std::filesystem::path(f.model).filename().string()
                                     : "batch-" + m.name + "-v" + m.version;
    train::KeyValues tags = {
        {"mlflow.source.name", "keel batch"}, {"mlflow.source.type", "JOB"}, {"keel.job", "batch"}};
    if (!m.name.empty()) {
      tags.emplace_back("keel.model.name", m.name);
      tags.emplace_back("keel.model.version", m.version);
    }
    KEEL_ASSIGN_OR_RETURN(run.id_, run.recorder_->StartRun(f.experiment, "", run_name, tags));
    const batch::BatchOptions& o = f.options;
    std::string keep;
    for (const std::string& k : o.keep_columns) keep += (keep.empty() ? "" : ",") + k;
    train::KeyValues params = {{"model", f.model},
                               {"input", o.input},
                               {"output", o.output},
                               {"format", f.format},
                               {"chunk_rows", std::to_string(o.chunk_rows)},
                               {"max_rejects", std::to_string(o.max_rejects)},
                               {"monitor_sample", FormatDouble(f.monitor_sample)}};
    if (!o.id_column.empty()) params.emplace_back("id_column", o.id_column);
    if (!keep.empty()) params.emplace_back("keep_columns", keep);
    if (Status st = run.recorder_->LogParams(run.id_, params); !st.ok()) {
      run.Fail(st);
      return st;
    }
    return run;
  }

  BatchRun(BatchRun&& other) noexcept
      : recorder_(std::move(other.recorder_)), id_(std::move(other.id_)), ended_(other.ended_) {
    other.ended_ = true;
  }
  BatchRun& operator=(BatchRun&&) = delete;
  // A run not ended by Finish or Fail (an early return, an exception) ends FAILED.
  ~BatchRun() {
    if (!ended_) Fail(Internal("keel batch ended before the job finished"));
  }

  const std::string& id() const { return id_; }

  // Records the counts and the input's digest and ends the run FINISHED; on
  // an error the run ends FAILED with it.
  Status Finish(const batch::BatchSummary& s, const BatchFlags& f, uint64_t monitored) {
    Status st = Record(s, f, monitored);
    if (st.ok()) st = recorder_->EndRun(id_, "FINISHED");
    if (!st.ok()) {
      Fail(st);
      return st;
    }
    ended_ = true;
    return OkStatus();
  }

  // Ends the run FAILED (KILLED when interrupted) with the error as a tag.
  void Fail(const Status& error, bool interrupted = false) {
    if (ended_) return;
    ended_ = true;
    (void)recorder_->SetTags(id_, {{"keel.batch.error", error.message()}});
    (void)recorder_->EndRun(id_, interrupted ? "KILLED" : "FAILED");
  }

  // Request ids of the job's monitored rows: "<prefix><input line>".
  std::string WindowPrefix() const { return "batch-" + id_ + "-"; }

 private:
  Status Record(const batch::BatchSummary& s, const BatchFlags& f, uint64_t monitored) {
    const double rate = s.seconds > 0 ? static_cast<double>(s.rows_out) / s.seconds : 0;
    KEEL_RETURN_IF_ERROR(
        recorder_->LogMetrics(id_, {{"rows_in", static_cast<double>(s.rows_in)},
                                    {"rows_out", static_cast<double>(s.rows_out)},
                                    {"rows_rejected", static_cast<double>(s.rejected)},
                                    {"rows_monitored", static_cast<double>(monitored)},
                                    {"duration_s", s.seconds},
                                    {"rows_per_s", rate}}));
    train::KeyValues tags = {{"keel.batch.input_sha256", s.input_sha256},
                             {"keel.batch.input_bytes", std::to_string(s.input_bytes)}};
    if (!s.reject_file.empty()) tags.emplace_back("keel.batch.reject_file", s.reject_file);
    if (monitored > 0) tags.emplace_back("keel.batch.window", WindowPrefix());
    KEEL_RETURN_IF_ERROR(recorder_->SetTags(id_, tags));
    if (f.options.input != "-") {
      train::DataVersion input{.role = "batch_input",
                               .path = f.options.input,
                               .sha256 = s.input_sha256,
                               .bytes = s.input_bytes,
                               .rows = s.rows_in,
                               .columns = 0};
      KEEL_RETURN_IF_ERROR(recorder_->LogDatasets(id_, {input}, "[]"));
    }
    return OkStatus();
  }

  explicit BatchRun(std::unique_ptr<train::RunRecorder> r) : recorder_(std::move(r)) {}
  std::unique_ptr<train::RunRecorder> recorder_;
  std::string id_;
  bool ended_ = false;
};

Status RunDistributed(BatchFlags& f, const CliModel& loaded, std::optional<BatchRun>& run) {
  if (f.options.output == "-") {
    return InvalidArgument("--distributed needs --output to be a file");
  }
  // Workers load exactly this version (or this file).
  const std::string ref = loaded.name.empty() ? std::filesystem::absolute(f.model).string()
                                              : loaded.name + "/" + loaded.version;
  f.dist.stall_timeout = std::chrono::seconds(f.stall_timeout_s);
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty) {
    const auto start = std::chrono::steady_clock::now();
    f.dist.progress = [start](uint64_t done, uint64_t published, bool input_done, uint64_t rows) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rpartitions %llu/%llu%s  %llu rows  %.0f rows/s",
                   static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(published), input_done ? "" : "+",
                   static_cast<unsigned long long>(rows),
                   s > 0 ? static_cast<double>(rows) / s : 0);
      std::fflush(stderr);
    };
  }
  g_interrupted.store(false);
  std::signal(SIGINT, OnBatchInterrupt);
  std::signal(SIGTERM, OnBatchInterrupt);
  f.options.cancel = &g_interrupted;
  auto scored = batch::ScoreDistributed(*loaded.model, ref, f.options, f.dist);
  if (tty) std::fprintf(stderr, "\n");
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!scored.ok()) {
    if (run) run->Fail(scored.status(), g_interrupted.load());
    return scored.status();
  }
  const batch::DistributedSummary& d = *scored;
  if (run) KEEL_RETURN_IF_ERROR(run->Finish(d.batch, f, 0));
  std::string workers;
  for (const std::string& w : d.workers) workers += (workers.empty() ? "" : ", ") + w;
  const batch::BatchSummary& s = d.batch;
  std::cerr << "batch: " << s.rows_in << " rows in, " << s.rows_out << " scored, " << s.rejected
            << " rejected" << (s.reject_file.empty() ? "" : " (" + s.reject_file + ")") << ", "
            << FormatDouble(s.seconds) << " s, " << d.partitions << " partitions by "
            << d.workers.size() << " workers (" << workers << "), " << d.redelivered
            << " redelivered, " << d.duplicates << " duplicate results dropped, job " << d.job
            << (loaded.version.empty() ? "" : ", " + f.model + " version " + loaded.version)
            << (run ? ", run " + run->id() : "") << std::endl;
  return OkStatus();
}

Status RunBatch(const GlobalOptions& global, BatchFlags& f) {
  f.options.format = f.format == "csv"     ? batch::InputFormat::kCsv
                     : f.format == "jsonl" ? batch::InputFormat::kJsonLines
                                           : batch::InputFormat::kByExtension;
  // Monitoring needs a registered model in the embedded store (the window is
  // written to its prediction log); the log blocks rather than drops, and
  // its queue is kept short so memory stays bounded by the chunk size.
  if (f.distributed) {
    if (f.monitor_sample_option != nullptr && f.monitor_sample_option->count() > 0) {
      return InvalidArgument(
          "--monitor-sample does not apply to --distributed jobs (workers send no samples)");
    }
    f.monitor_sample = 0;
  }
  serve::PredictionLogOptions log_options;
  log_options.when_full = serve::WhenFull::kBlock;
  log_options.queue_capacity = 8192;
  const bool want_monitor = f.monitor_sample > 0 && global.tracking_uri.empty();
  KEEL_ASSIGN_OR_RETURN(CliModel loaded,
                        LoadModelForCli(global, f.model, want_monitor ? &log_options : nullptr));
  const model::LoadedModel& model = *loaded.model;
  serve::PredictionLog* log = loaded.app != nullptr ? loaded.app->prediction_log() : nullptr;

  std::unique_ptr<Transport> transport;
  std::optional<BatchRun> run;
  if (f.track) {
    KEEL_ASSIGN_OR_RETURN(transport, Transport::Make(global));
    KEEL_ASSIGN_OR_RETURN(BatchRun started, BatchRun::Start(*transport, f, loaded));
    run.emplace(std::move(started));
  }
  if (f.distributed) return RunDistributed(f, loaded, run);
  uint64_t monitored = 0;
  std::string prefix;
  if (log != nullptr) {
    prefix = run ? run->WindowPrefix() : "batch-" + RandomHex(8) + "-";
    const size_t outputs = static_cast<size_t>(model.predictor.num_outputs());
    // Appended in slices of half the queue, so a chunk's sample never sits
    // in the queue whole.
    const size_t slice = std::max<size_t>(1, log_options.queue_capacity / 2);
    f.options.sample_rate = f.monitor_sample;
    f.options.on_scored = [&, outputs, slice](std::span<batch::ScoredRow> rows) -> Status {
      const int64_t now = NowMillis();
      for (size_t begin = 0; begin < rows.size(); begin += slice) {
        const size_t end = std::min(rows.size(), begin + slice);
        std::vector<serve::PredictionRecord> records(end - begin);
        for (size_t i = begin; i < end; ++i) {
          serve::PredictionRecord& r = records[i - begin];
          r.request_id = prefix + std::to_string(rows[i].line);
          r.time_ms = now;
          r.model = loaded.name;
          r.version = loaded.version;
          r.endpoint = "batch";
          r.input_json = std::move(rows[i].input_json);
          AppendJsonFloats(r.output_json, rows[i].outputs, outputs);
          r.latency_us = rows[i].latency_us;
        }
        monitored += records.size();
        KEEL_RETURN_IF_ERROR(log->Append(std::move(records)));
      }
      return OkStatus();
    };
    // The window is complete before the output appears.
    f.options.before_commit = [log] { return log->Flush(); };
  }
  g_interrupted.store(false);
  std::signal(SIGINT, OnBatchInterrupt);
  std::signal(SIGTERM, OnBatchInterrupt);
  f.options.cancel = &g_interrupted;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty) f.options.progress = ProgressPrinter();
  auto scored = batch::ScoreFile(model, f.options);
  if (tty) std::fprintf(stderr, "\n");
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  f.options.on_scored = nullptr;
  f.options.before_commit = nullptr;
  if (!scored.ok()) {
    if (run) run->Fail(scored.status(), g_interrupted.load());
    return scored.status();
  }
  const batch::BatchSummary& s = *scored;
  // The output is complete and in place; a failure to record the run ends it
  // FAILED and fails the command, and the output stays.
  if (run) KEEL_RETURN_IF_ERROR(run->Finish(s, f, monitored));
  std::cerr << "batch: " << s.rows_in << " rows in, " << s.rows_out << " scored, " << s.rejected
            << " rejected" << (s.reject_file.empty() ? "" : " (" + s.reject_file + ")") << ", "
            << FormatDouble(s.seconds) << " s"
            << (loaded.version.empty() ? "" : ", " + f.model + " version " + loaded.version)
            << (run ? ", run " + run->id() : "")
            << (monitored > 0
                    ? ", " + std::to_string(monitored) + " rows to monitoring (" + prefix + "*)"
                    : "")
            << std::endl;
  return OkStatus();
}

// The flags that name the work queue; coordinator and workers must agree.
void AddQueueOptions(CLI::App* cmd, batch::QueueOptions& q) {
  cmd->add_option("--nats", q.nats_url, "NATS server URL(s), comma-separated")
      ->capture_default_str();
  cmd->add_option("--batch-stream", q.stream, "JetStream work-queue stream of partitions")
      ->capture_default_str();
  cmd->add_option("--results-stream", q.results_stream,
                  "JetStream stream of the partitions' outputs")
      ->capture_default_str();
  cmd->add_option("--subject-prefix", q.subject_prefix,
                  "subjects are <prefix>.tasks.<job> and <prefix>.results.<job>")
      ->capture_default_str();
  cmd->add_option("--consumer", q.durable, "the workers' shared durable consumer")
      ->capture_default_str();
}

}  // namespace

void AddBatchCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand("batch", "Score a CSV file with a model, in input order");
  auto f = std::make_shared<BatchFlags>();
  cmd->add_option("model", f->model,
                  "name@alias, name/version or name (registered), or a local model path")
      ->required();
  cmd->add_option("--input", f->options.input,
                  "CSV with a header row, or JSON Lines (.jsonl); .gz/.zst decompressed; - for "
                  "stdin")
      ->required();
  cmd->add_option("--output", f->options.output, "CSV to write (.gz/.zst compressed); - for stdout")
      ->required();
  cmd->add_option("--format", f->format, "input format: auto (by extension), csv or jsonl")
      ->check(CLI::IsMember({"auto", "csv", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--id-column", f->options.id_column, "column copied first into the output");
  cmd->add_option("--keep-columns", f->options.keep_columns, "columns copied into the output")
      ->delimiter(',');
  cmd->add_option("--reject-file", f->options.reject_file,
                  "where rejected rows go (default <output>.rejects.csv)");
  cmd->add_option("--max-rejects", f->options.max_rejects,
                  "fail when more rows than this are rejected")
      ->capture_default_str();
  cmd->add_option("--chunk-rows", f->options.chunk_rows, "rows scored together")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24))
      ->capture_default_str();
  cmd->add_flag("!--no-track", f->track, "do not record the job as a run");
  cmd->add_option("--experiment", f->experiment, "experiment the job's run is recorded in")
      ->capture_default_str();
  cmd->add_option("--run-name", f->run_name, "the run's name (default batch-<model>-v<version>)");
  f->monitor_sample_option =
      cmd->add_option("--monitor-sample", f->monitor_sample,
                      "share of scored rows sent to the prediction log as a batch window (1 = all, "
                      "0 = none; registered models in the embedded store)")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
  cmd->add_flag("--distributed", f->distributed,
                "split the input into partitions scored by `keel worker` processes over NATS "
                "JetStream");
  AddQueueOptions(cmd, f->dist.queue);
  cmd->add_option("--partition-rows", f->dist.partition_rows, "records per partition")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--partition-bytes", f->dist.partition_bytes,
                  "uncompressed bytes per partition (0: the NATS max payload less 8 KiB)")
      ->capture_default_str();
  cmd->add_option("--window", f->dist.window,
                  "partitions outstanding (published and not yet written)")
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->capture_default_str();
  cmd->add_option("--stall-timeout-s", f->stall_timeout_s,
                  "fail when no partition finishes for this long")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}))
      ->capture_default_str();
  cmd->callback(
      [&run, &global, f] { run = [&global, f]() -> Status { return RunBatch(global, *f); }; });
}

void AddWorkerCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "worker", "Score the partitions of `keel batch --distributed` jobs until SIGTERM");
  struct WorkerFlags {
    batch::WorkerOptions options;
    int64_t ack_wait_ms = 30000;
  };
  auto f = std::make_shared<WorkerFlags>();
  AddQueueOptions(cmd, f->options.queue);
  cmd->add_option("--ack-wait-ms", f->ack_wait_ms,
                  "a partition held this long without a sign of life is redelivered (the "
                  "worker marks it in progress every third of this)")
      ->check(CLI::Range(int64_t{1000}, int64_t{3600000}))
      ->capture_default_str();
  cmd->add_option("--name", f->options.name, "the worker's name in results (default host:pid)");
  cmd->callback([&run, &global, f] {
    run = [&global, f]() -> Status {
      // SIGINT/SIGTERM are taken by a waiting thread: the worker finishes
      // the partition it holds, then stops.
      sigset_t signals;
      sigemptyset(&signals);
      sigaddset(&signals, SIGINT);
      sigaddset(&signals, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &signals, nullptr);
      batch::WorkerOptions o = f->options;
      o.ack_wait = std::chrono::milliseconds(f->ack_wait_ms);
      batch::ModelLoader loader =
          [&global](const std::string& ref) -> Result<std::shared_ptr<const model::LoadedModel>> {
        KEEL_ASSIGN_OR_RETURN(CliModel m, LoadModelForCli(global, ref));
        return m.model;
      };
      batch::BatchWorker worker(loader, o);
      // The first signal stops the worker after the partition it holds; a
      // second one ends the process at once.
      std::atomic<bool> stop{false};
      std::atomic<bool> done{false};
      std::thread waiter([&stop, &done, signals] {
        int sig = 0;
        sigwait(&signals, &sig);
        if (done.load()) return;
        stop.store(true);
        sigwait(&signals, &sig);
        if (done.load()) return;
        std::_Exit(128 + sig);
      });
      auto join_waiter = [&] {
        done.store(true);
        // Wake the waiter (it may wait for a first or a second signal).
        pthread_kill(waiter.native_handle(), SIGTERM);
        pthread_kill(waiter.native_handle(), SIGTERM);
        waiter.join();
      };
      if (Status st = worker.Start(); !st.ok()) {
        join_waiter();
        return st;
      }
      std::cerr << "keel worker " << worker.options().name << ": ready on " << o.queue.nats_url
                << " (stream " << o.queue.stream << ", consumer " << o.queue.durable << ")"
                << std::endl;
      Status st = worker.Run(stop, [](const std::string& job, uint64_t partition, uint64_t rows,
                                      double seconds, const Status& error) {
        if (error.ok()) {
          std::cerr << "job " << job << " partition " << partition << ": " << rows << " rows in "
                    << FormatDouble(seconds) << " s" << std::endl;
        } else {
          std::cerr << "job " << job << " partition " << partition << ": " << error.message()
                    << std::endl;
        }
      });
      join_waiter();
      const batch::WorkerStats s = worker.stats();
      std::cerr << "keel worker " << worker.options().name << ": stopped after " << s.partitions
                << " partitions, " << s.rows << " rows, " << s.failed << " failed, "
                << s.redelivered << " redelivered, " << s.dropped << " dropped (their job was gone)"
                << std::endl;
      return st;
    };
  });
}

}  // namespace keel::cli
