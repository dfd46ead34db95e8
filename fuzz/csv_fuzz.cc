// libFuzzer target: the CSV reader and type inference (ReadCsvTable), then a
// one-hot pipeline fitted on the result and used to encode the table.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "keel/data/csv.h"
#include "keel/data/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::istringstream in(text);
  keel::data::CsvOptions options;
  options.reader.block_size = 64;  // many refills on small inputs
  auto table = keel::data::ReadCsvTable(in, "fuzz.csv", options);
  if (!table.ok() || table->num_columns() == 0) return 0;
  auto pipeline = keel::data::FeaturePipeline::Fit(*table, table->ColumnNames());
  if (!pipeline.ok()) return 0;
  std::vector<float> out(pipeline->num_features() * table->num_rows());
  (void)pipeline->EncodeTable(*table, out.data(), 0, table->num_rows());
  auto again = keel::data::FeaturePipeline::FromJson(pipeline->ToJson());
  if (!again.ok() || !(*again == *pipeline)) __builtin_trap();  // round trip must be exact
  return 0;
}
