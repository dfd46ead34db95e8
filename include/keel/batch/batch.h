// File: keel/batch/batch.h
//
// Batch scoring: a CSV or JSON Lines file (or stdin), plain, gzip or zstd,
// scored by a loaded model in chunks, written as CSV in input order. Memory stays bounded by the
// chunk size, not the input size.
//
//   keel::batch::BatchOptions opts;
//   opts.input = "customers.csv";
//   opts.output = "scores.csv";             // written as scores.csv.tmp-*, renamed when complete
//   opts.id_column = "customer_id";
//   KEEL_ASSIGN_OR_RETURN(keel::batch::BatchSummary s, keel::batch::ScoreFile(model, opts));
//
// Output: a header row, then per input row the id column (when set), the
// kept columns (as given), and the model's output: one column named after
// the package's output name, or for multiclass models one column
// "<output_name>_<class>" per class.
//
// Rows that cannot be scored (wrong field count, a value the pipeline
// refuses) are written to the reject file as "line,reason" with the input's
// 1-based line number, counted, and skipped; when more than max_rejects rows
// are rejected the job fails. A failed job leaves no output file (and removes
// its temporary file); an output "-" (stdout) is streamed as it goes.
//
// Monitoring: when on_scored is set, a sample of the scored rows (each with
// probability sample_rate, drawn from a generator seeded with sample_seed so
// a rerun on the same input picks the same rows) is handed to it after each
// chunk, with the row's raw record as a JSON object (CSV: every header field,
// numbers as numbers and other text as strings, as /invocations logs CSV;
// JSON Lines: the line) and its outputs. `keel batch` turns these into a
// batch window of the prediction log.
//
// The summary carries the SHA-256 and size of the input's (decompressed)
// bytes, so a job records exactly which data it scored.
//
// Threads: ScoreFile runs on the calling thread, which reads and encodes;
// prediction runs on `pool` (ThreadPool::Default() when null).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/thread_pool.h"
#include "keel/model/package.h"

namespace keel::batch {

struct BatchProgress {
  uint64_t rows = 0;         // rows read so far
  uint64_t rejected = 0;     // rows rejected so far
  uint64_t bytes_read = 0;   // input bytes consumed
  uint64_t total_bytes = 0;  // input size; 0 when unknown (stdin)
};

enum class InputFormat { kByExtension, kCsv, kJsonLines };

// One scored row handed to BatchOptions::on_scored.
struct ScoredRow {
  uint64_t line = 0;               // 1-based line of the record in the input
  std::string input_json;          // the raw record as a JSON object
  const float* outputs = nullptr;  // the model's outputs; valid during the call
  double latency_us = 0;           // the chunk's prediction time per row
};

struct BatchOptions {
  // A path, or "-" for stdin. Paths ending in .gz or .zst(d) are decompressed;
  // output paths ending so are compressed the same way.
  std::string input;
  std::string output;  // a path, or "-" for stdout
  // By extension: .jsonl / .ndjson (before any compression extension) are
  // JSON Lines; anything else (and stdin) is CSV.
  InputFormat format = InputFormat::kByExtension;
  std::string id_column;                  // copied first when set
  std::vector<std::string> keep_columns;  // copied after the id
  // Rejected rows go here ("line,reason" CSV); default "<output>.rejects.csv",
  // or stderr lines when the output is stdout.
  std::string reject_file;
  uint64_t max_rejects = 0;  // more rejected rows than this fail the job
  size_t chunk_rows = 65536;
  ThreadPool* pool = nullptr;
  // Called after each chunk, on the calling thread.
  std::function<void(const BatchProgress&)> progress;
  // Sampled scored rows (see Monitoring above); the callee may move the
  // strings out. An error fails the job.
  std::function<Status(std::span<ScoredRow>)> on_scored;
  double sample_rate = 1.0;  // in [0, 1]
  uint64_t sample_seed = 42;
  // Called once every row is scored and written, before the output is
  // committed (renamed into place); an error fails the job and leaves no
  // output. E.g. flushing what on_scored queued.
  std::function<Status()> before_commit;
  // Checked before each chunk; when set, the job stops with kUnavailable
  // ("interrupted") and leaves no output.
  const std::atomic<bool>* cancel = nullptr;
  // Added to every line number reported (rejects, ScoredRow::line): the
  // lines a part of a larger input starts after (see ScoreText).
  uint64_t line_offset = 0;
};

struct BatchSummary {
  uint64_t rows_in = 0;
  uint64_t rows_out = 0;
  uint64_t rejected = 0;
  double seconds = 0;
  std::string reject_file;   // where rejects went (empty when none)
  std::string input_sha256;  // of the decompressed input bytes
  uint64_t input_bytes = 0;  // decompressed input bytes
  uint64_t sampled = 0;      // rows handed to on_scored
};

// Scores `options.input` with `model`. InvalidArgument for a CSV header that
// lacks an input column, the id or a kept column, for corrupt compressed
// input, and when rejects exceed max_rejects (the message names the first
// rejected line and reason), and for a sample_rate outside [0, 1]; an error
// from on_scored or before_commit is returned as it is. When compressed input
// is corrupt or truncated, that is the error reported, whatever it caused
// first (a ragged last row, too many rejects). JSON Lines records may leave fields out
// (missing values); their copied columns are written as text.
Result<BatchSummary> ScoreFile(const model::LoadedModel& model, const BatchOptions& options);

// One part of an input scored in memory (what a distributed worker does).
struct ScoredText {
  std::string header;    // the output's header row
  std::string rows;      // the scored rows, in input order
  std::string rejects;   // "line,reason" rows, no header
  BatchSummary summary;  // rows_in, rows_out, rejected, sampled, input_bytes, seconds
};

// Scores `text`, a CSV (header row first) or, with format kJsonLines, JSON
// Lines; kByExtension reads CSV. options.input names the text in errors;
// output, reject_file, progress and before_commit are not used. Lines are
// 1-based in `text`, plus options.line_offset. Errors as ScoreFile's.
Result<ScoredText> ScoreText(const model::LoadedModel& model, std::string_view text,
                             const BatchOptions& options);

}  // namespace keel::batch
