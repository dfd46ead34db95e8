// keel labels import: ground truth for logged predictions, from a CSV file,
// sent to /labels in chunks (embedded store or a remote server).
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/data/csv.h"

namespace keel::cli {
namespace {

// A CSV label as a JSON scalar: JSON numbers and true/false as such, anything
// else (including "007" or "1.") a string.
std::string LabelJson(std::string_view text) {
  if (IsJsonNumber(text) || text == "true" || text == "false") return std::string(text);
  return JsonQuote(text);
}

struct ImportFlags {
  std::string file;
  std::string id_column = "request_id";
  std::string label_column = "label";
  size_t chunk = 5000;
};

Status ImportLabels(const GlobalOptions& global, const ImportFlags& f) {
  KEEL_ASSIGN_OR_RETURN(auto transport, Transport::Make(global));
  KEEL_ASSIGN_OR_RETURN(auto reader, data::CsvReader::Open(f.file));
  const auto& header = reader->header();
  int id_col = -1, label_col = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == f.id_column) id_col = static_cast<int>(i);
    if (header[i] == f.label_column) label_col = static_cast<int>(i);
  }
  if (id_col < 0 || label_col < 0) {
    return InvalidArgument(f.file + ": header must name columns '" + f.id_column + "' and '" +
                           f.label_column + "'");
  }
  uint64_t matched = 0, unknown = 0, sent = 0;
  std::vector<std::string> unknown_sample;
  std::string body;
  size_t in_chunk = 0;
  auto flush = [&]() -> Status {
    if (in_chunk == 0) return OkStatus();
    body += "]}";
    KEEL_ASSIGN_OR_RETURN(JsonDoc doc, transport->Call("POST", "/labels", {}, body));
    matched += static_cast<uint64_t>(IntField(doc.root(), "matched"));
    simdjson::dom::array ids;
    if (doc.root()["unknown_request_ids"].get_array().get(ids) == simdjson::SUCCESS) {
      for (simdjson::dom::element id : ids) {
        ++unknown;
        std::string_view s;
        if (unknown_sample.size() < 5 && id.get_string().get(s) == simdjson::SUCCESS) {
          unknown_sample.emplace_back(s);
        }
      }
    }
    sent += in_chunk;
    in_chunk = 0;
    body.clear();
    return OkStatus();
  };
  for (;;) {
    KEEL_ASSIGN_OR_RETURN(bool more, reader->Next());
    if (!more) break;
    const auto& fields = reader->fields();
    if (fields.size() != header.size()) {
      return InvalidArgument(f.file + ":" + std::to_string(reader->line()) + ": expected " +
                             std::to_string(header.size()) + " fields, got " +
                             std::to_string(fields.size()));
    }
    std::string_view id = fields[static_cast<size_t>(id_col)];
    std::string_view label = fields[static_cast<size_t>(label_col)];
    if (id.empty() || label.empty()) {
      return InvalidArgument(f.file + ":" + std::to_string(reader->line()) +
                             ": empty request id or label");
    }
    body += in_chunk == 0 ? "{\"labels\":[" : ",";
    body += "{\"request_id\":" + JsonQuote(id) + ",\"label\":" + LabelJson(label) + "}";
    if (++in_chunk == f.chunk) KEEL_RETURN_IF_ERROR(flush());
  }
  KEEL_RETURN_IF_ERROR(flush());
  std::cout << "labels: " << sent << " read, " << matched << " matched, " << unknown
            << " unknown request ids";
  if (!unknown_sample.empty()) {
    std::cout << " (e.g.";
    for (const auto& id : unknown_sample) std::cout << " " << id;
    std::cout << ")";
  }
  std::cout << std::endl;
  return OkStatus();
}

}  // namespace

void AddLabelCommands(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* labels = app.add_subcommand("labels", "Ground-truth labels for logged predictions");
  labels->require_subcommand(1);
  auto* import_cmd = labels->add_subcommand("import", "Import labels from a CSV file");
  auto flags = std::make_shared<ImportFlags>();
  import_cmd->add_option("file", flags->file, "CSV file with a header row")->required();
  import_cmd->add_option("--id-column", flags->id_column, "column holding the request id")
      ->capture_default_str();
  import_cmd->add_option("--label-column", flags->label_column, "column holding the label")
      ->capture_default_str();
  import_cmd->add_option("--chunk", flags->chunk, "labels per request")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  import_cmd->callback([&run, &global, flags] {
    run = [&global, flags]() -> Status { return ImportLabels(global, *flags); };
  });
}

}  // namespace keel::cli
