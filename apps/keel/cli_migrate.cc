// keel migrate: moves an installation's state from one store to another
// (e.g. its single-machine SQLite file into PostgreSQL) with
// store::CopyStore; artifacts are untouched (they stay where their URIs say).
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/store/store.h"

namespace keel::cli {
namespace {

struct MigrateFlags {
  std::string from;
  std::string to;
  bool quiet = false;
};

Status Migrate(const MigrateFlags& f) {
  if (f.from == f.to) return InvalidArgument("--from and --to name the same store");
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<store::Database> from, store::OpenDatabase(f.from, {}));
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<store::Database> to, store::OpenDatabase(f.to, {}));
  std::string current;
  store::CopyProgress progress;
  if (!f.quiet) {
    progress = [&current](std::string_view table, int64_t copied, int64_t total) {
      if (table != current) {
        if (!current.empty()) std::cerr << "\n";
        current = std::string(table);
      }
      std::cerr << "\r  " << table << ": " << copied << " / " << total << " rows" << std::flush;
    };
  }
  const int64_t started = NowMillis();
  KEEL_ASSIGN_OR_RETURN(store::CopyReport report, store::CopyStore(*from, *to, progress));
  if (!current.empty()) std::cerr << "\n";
  std::cout << "migrated " << report.rows << " rows in " << report.tables.size() << " tables from "
            << store::RedactUri(from->uri()) << " to " << store::RedactUri(to->uri()) << " in "
            << FormatDouble(static_cast<double>(NowMillis() - started) / 1000.0)
            << " s; every table's row count checked" << std::endl;
  if (!f.quiet) {
    for (const auto& [table, rows] : report.tables) {
      if (rows > 0) std::cout << "  " << table << ": " << rows << "\n";
    }
  }
  return OkStatus();
}

}  // namespace

void AddMigrateCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "migrate",
      "Copy every record of one store into a new, empty one (e.g. SQLite into PostgreSQL); "
      "artifacts stay where they are");
  auto f = std::make_shared<MigrateFlags>();
  cmd->add_option("--from", f->from, "the store to read, e.g. sqlite://keel-data/keel.db")
      ->required();
  cmd->add_option("--to", f->to, "the new store, e.g. postgresql://keel@db:5432/keel")->required();
  cmd->add_flag("--quiet", f->quiet, "no progress and no per-table counts");
  cmd->callback([&run, f] { run = [f]() -> Status { return Migrate(*f); }; });
  (void)global;
}

}  // namespace keel::cli
