// CopyStore (keel/store/store.h): one store's rows into another, through the
// backends' catalog queries (Dialect::list_*), so any pair of backends works.
#include <algorithm>
#include <cctype>

#include "keel/store/store.h"

namespace keel::store {
namespace {

enum class Kind { kInt, kDouble, kBytes, kText };

struct Column {
  std::string name;
  Kind kind;
};

Kind KindOf(std::string declared) {
  std::transform(declared.begin(), declared.end(), declared.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (declared.find("INT") != std::string::npos) return Kind::kInt;
  if (declared.find("DOUBLE") != std::string::npos || declared.find("REAL") != std::string::npos ||
      declared.find("FLOAT") != std::string::npos) {
    return Kind::kDouble;
  }
  if (declared.find("BLOB") != std::string::npos || declared.find("BYTEA") != std::string::npos) {
    return Kind::kBytes;
  }
  return Kind::kText;
}

// What the migrations write into a new store; anything else makes it non-empty.
bool HoldsOnlyDefaults(std::string_view table, int64_t rows) {
  if (table == "schema_migrations" || table == "sequences") return true;
  if (table == "experiments") return rows <= 1;  // the Default experiment
  return rows == 0;
}

Result<std::vector<std::string>> Tables(Connection& c, const Dialect& d) {
  std::vector<std::string> tables;
  KEEL_RETURN_IF_ERROR(c.Query(d.list_tables, {}, [&](const RowView& row) {
    tables.emplace_back(row.Text(0));
    return OkStatus();
  }));
  return tables;
}

Result<std::vector<Column>> Columns(Connection& c, const Dialect& d, const std::string& table) {
  std::vector<Column> columns;
  KEEL_RETURN_IF_ERROR(c.Query(d.list_columns, {Value(table)}, [&](const RowView& row) {
    columns.push_back({std::string(row.Text(0)), KindOf(std::string(row.Text(1)))});
    return OkStatus();
  }));
  return columns;
}

Result<int64_t> Count(Connection& c, const std::string& table) {
  int64_t n = 0;
  KEEL_RETURN_IF_ERROR(c.Query("SELECT COUNT(*) FROM " + table, {}, [&](const RowView& row) {
    n = row.Int(0);
    return OkStatus();
  }));
  return n;
}

// A quoted SQL identifier (names come from a catalog, not from keel).
std::string Quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string Replace(std::string text, std::string_view token, const std::string& with) {
  for (size_t pos = text.find(token); pos != std::string::npos; pos = text.find(token, pos)) {
    text.replace(pos, token.size(), with);
    pos += with.size();
  }
  return text;
}

}  // namespace

Result<CopyReport> CopyStore(Database& from, Database& to, const CopyProgress& progress) {
  KEEL_ASSIGN_OR_RETURN(int from_version, SchemaVersion(from));
  KEEL_ASSIGN_OR_RETURN(int to_version, SchemaVersion(to));
  if (from_version != to_version) {
    return FailedPrecondition("schema versions differ: " + std::to_string(from_version) + " in " +
                              RedactUri(from.uri()) + ", " + std::to_string(to_version) + " in " +
                              RedactUri(to.uri()));
  }
  CopyReport report;
  KEEL_RETURN_IF_ERROR(to.Write([&](Connection& out) -> Status {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> target_tables, Tables(out, to.dialect()));
    for (const std::string& t : target_tables) {
      KEEL_ASSIGN_OR_RETURN(int64_t n, Count(out, Quote(t)));
      if (!HoldsOnlyDefaults(t, n)) {
        return FailedPrecondition("the target store " + RedactUri(to.uri()) +
                                  " already holds data (table " + t + ": " + std::to_string(n) +
                                  " rows); migrate into a new, empty store");
      }
    }
    return from.Read([&](Connection& in) -> Status {
      KEEL_ASSIGN_OR_RETURN(std::vector<std::string> tables, Tables(in, from.dialect()));
      for (const std::string& table : tables) {
        if (table == "schema_migrations") continue;  // each side has its own, equal in version
        if (std::find(target_tables.begin(), target_tables.end(), table) == target_tables.end()) {
          return FailedPrecondition("table " + table + " of " + RedactUri(from.uri()) +
                                    " is not in " + RedactUri(to.uri()));
        }
        KEEL_ASSIGN_OR_RETURN(std::vector<Column> columns, Columns(in, from.dialect(), table));
        KEEL_ASSIGN_OR_RETURN(std::vector<Column> target, Columns(out, to.dialect(), table));
        for (const Column& col : columns) {
          if (std::none_of(target.begin(), target.end(),
                           [&](const Column& t) { return t.name == col.name; })) {
            return FailedPrecondition("column " + table + "." + col.name + " of " +
                                      RedactUri(from.uri()) + " is not in " + RedactUri(to.uri()));
          }
        }
        const std::string quoted = Quote(table);
        KEEL_ASSIGN_OR_RETURN(int64_t total, Count(in, quoted));
        std::string names, marks;
        for (size_t i = 0; i < columns.size(); ++i) {
          names += (i ? ", " : "") + Quote(columns[i].name);
          marks += i ? ", ?" : "?";
        }
        KEEL_RETURN_IF_ERROR(out.Exec("DELETE FROM " + quoted, {}));
        const std::string insert =
            "INSERT INTO " + quoted + " (" + names + ") VALUES (" + marks + ")";
        int64_t copied = 0;
        std::vector<Value> values(columns.size());
        KEEL_RETURN_IF_ERROR(
            in.Query("SELECT " + names + " FROM " + quoted, {}, [&](const RowView& row) -> Status {
              for (size_t i = 0; i < columns.size(); ++i) {
                const int col = static_cast<int>(i);
                if (row.IsNull(col)) {
                  values[i] = std::monostate{};
                  continue;
                }
                switch (columns[i].kind) {
                  case Kind::kInt:
                    values[i] = row.Int(col);
                    break;
                  case Kind::kDouble:
                    values[i] = row.Double(col);
                    break;
                  case Kind::kBytes:
                    values[i] = Blob{row.Bytes(col)};
                    break;
                  case Kind::kText:
                    values[i] = row.Text(col);
                    break;
                }
              }
              KEEL_RETURN_IF_ERROR(out.Exec(insert, values).WithContext(table));
              ++copied;
              if (progress && (copied % 10000 == 0 || copied == total)) {
                progress(table, copied, total);
              }
              return OkStatus();
            }));
        if (progress && copied == 0) progress(table, 0, 0);
        KEEL_ASSIGN_OR_RETURN(int64_t landed, Count(out, quoted));
        if (landed != total) {
          return DataLoss("table " + table + ": " + std::to_string(total) + " rows read, " +
                          std::to_string(landed) + " in the target");
        }
        report.tables.emplace_back(table, total);
        report.rows += total;
      }
      // Ids assigned later continue after the copied ones.
      if (to.dialect().list_auto_ids.empty()) return OkStatus();
      std::vector<std::pair<std::string, std::string>> auto_ids;
      KEEL_RETURN_IF_ERROR(out.Query(to.dialect().list_auto_ids, {}, [&](const RowView& row) {
        auto_ids.emplace_back(row.Text(0), row.Text(1));
        return OkStatus();
      }));
      for (const auto& [table, column] : auto_ids) {
        const std::string sql =
            Replace(Replace(to.dialect().reset_auto_id, "{table}", table), "{column}", column);
        KEEL_RETURN_IF_ERROR(out.Query(sql, {}, [](const RowView&) { return OkStatus(); }));
      }
      return OkStatus();
    });
  }));
  return report;
}

}  // namespace keel::store
