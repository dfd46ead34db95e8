// Internal: the recording steps shared by keel's ways of training a model
// (TrainAndRecord, ContinueAndRecord).
#pragma once

#include <functional>

#include "keel/train/train.h"

namespace keel::train::internal {

// Starts the run a training records into (tags: the source name and
// options.extra_tags); returns its id.
Result<std::string> StartRecordedRun(const std::string& source_name, RunRecorder& recorder,
                                     const RecordOptions& options);
// Ends run `run_id` FAILED (KILLED when progress.cancel is set) and passes
// `error` on.
Status FailRun(const Status& error, const std::string& run_id, const TrainProgress& progress,
               RunRecorder& recorder);

// Logs a trained model's params, metrics, tags and datasets to its run.
Status LogTrained(const TrainedModel& m, const std::string& run_id, RunRecorder& recorder);

// The tail every recorded training shares: writes the package, checks it
// loads and scores its input example, uploads it, ends the run FINISHED and
// registers it. `fail` ends the run FAILED (or KILLED) and passes the error on.
Result<RecordResult> PackageAndRegister(const TrainedModel& m, const TrainProgress& progress,
                                        RunRecorder& recorder, const RecordOptions& options,
                                        RecordResult result,
                                        const std::function<Status(const Status&)>& fail);

}  // namespace keel::train::internal
