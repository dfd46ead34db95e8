#include "src/tracking/search_filter.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "keel/core/json.h"
#include "keel/core/util.h"

namespace keel::tracking::internal {
namespace {

enum class TokKind { kIdent, kString, kNumber, kOp, kLParen, kRParen, kComma, kEnd };

struct Token {
  TokKind kind;
  std::string text;     // identifier (unquoted), string contents, operator upper-case
  bool quoted = false;  // identifier written with backticks or double quotes
  size_t pos = 0;
};

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view text, std::string_view what) : text_(text), what_(what) {}

  Status Run(std::vector<Token>& out) {
    while (true) {
      while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      if (pos_ >= text_.size()) {
        out.push_back({TokKind::kEnd, "", false, pos_});
        return OkStatus();
      }
      size_t start = pos_;
      char c = text_[pos_];
      if (c == '\'' || c == '"' || c == '`') {
        std::string s;
        KEEL_RETURN_IF_ERROR(Quoted(c, s));
        // 'single' is a string value; "double" and `back` may be keys or values.
        out.push_back({c == '\'' ? TokKind::kString : TokKind::kIdent, std::move(s), true, start});
        if (c == '"') out.back().kind = TokKind::kIdent;
        continue;
      }
      if (c == '(') { out.push_back({TokKind::kLParen, "(", false, start}); ++pos_; continue; }
      if (c == ')') { out.push_back({TokKind::kRParen, ")", false, start}); ++pos_; continue; }
      if (c == ',') { out.push_back({TokKind::kComma, ",", false, start}); ++pos_; continue; }
      if (c == '=' || c == '!' || c == '<' || c == '>') {
        std::string op(1, c);
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '=' || (c == '<' && text_[pos_] == '>'))) {
          op += text_[pos_++];
        }
        if (op == "!") return Error("expected '!='", start);
        out.push_back({TokKind::kOp, op, false, start});
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
        size_t end = pos_ + 1;
        while (end < text_.size() &&
               (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '.' ||
                ((text_[end] == '-' || text_[end] == '+') &&
                 (text_[end - 1] == 'e' || text_[end - 1] == 'E')))) {
          ++end;
        }
        out.push_back({TokKind::kNumber, std::string(text_.substr(pos_, end - pos_)), false, start});
        pos_ = end;
        continue;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos_;
        while (end < text_.size()) {
          char d = text_[end];
          if (std::isalnum(static_cast<unsigned char>(d)) || d == '_' || d == '.' || d == '-' ||
              d == ':' || d == '/') {
            ++end;
            continue;
          }
          // entity.`quoted key` / entity."quoted key"
          if ((d == '`' || d == '"') && end > pos_ && text_[end - 1] == '.') {
            std::string entity(text_.substr(pos_, end - pos_));
            pos_ = end;
            std::string key;
            KEEL_RETURN_IF_ERROR(Quoted(d, key));
            out.push_back({TokKind::kIdent, entity + key, true, start});
            end = std::string_view::npos;
            break;
          }
          break;
        }
        if (end == std::string_view::npos) continue;
        out.push_back({TokKind::kIdent, std::string(text_.substr(pos_, end - pos_)), false, start});
        pos_ = end;
        continue;
      }
      return Error(std::string("unexpected character '") + c + "'", start);
    }
  }

  Status Error(std::string_view what, size_t pos) const {
    return InvalidArgument("Invalid " + std::string(what_) + " '" + std::string(text_) + "': " +
                           std::string(what) + " at position " + std::to_string(pos));
  }

 private:
  Status Quoted(char q, std::string& out) {
    size_t start = pos_;
    ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == q) {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == q) {  // doubled quote escapes
          out += q;
          pos_ += 2;
          continue;
        }
        ++pos_;
        return OkStatus();
      }
      if (c == '\\' && pos_ + 1 < text_.size() && text_[pos_ + 1] == q) {
        out += q;
        pos_ += 2;
        continue;
      }
      out += c;
      ++pos_;
    }
    return Error(std::string("unterminated quote ") + q, start);
  }

  std::string_view text_;
  std::string_view what_;
  size_t pos_ = 0;
};

struct EntityName {
  std::string_view name;
  Entity entity;
};
constexpr EntityName kEntities[] = {
    {"metric", Entity::kMetric},       {"metrics", Entity::kMetric},
    {"param", Entity::kParam},         {"params", Entity::kParam},
    {"parameter", Entity::kParam},     {"parameters", Entity::kParam},
    {"tag", Entity::kTag},             {"tags", Entity::kTag},
    {"attribute", Entity::kAttribute}, {"attributes", Entity::kAttribute},
    {"attr", Entity::kAttribute},      {"run", Entity::kAttribute},
    {"dataset", Entity::kDataset},     {"datasets", Entity::kDataset},
};

constexpr std::string_view kDatasetKeys[] = {"name", "digest", "context"};

std::string CanonicalAttribute(std::string key) {
  if (key == "created" || key == "Created") return "start_time";
  if (key == "run_uuid") return "run_id";
  return key;
}

struct Ident {
  Entity entity;
  std::string key;
};

Result<Ident> SplitIdentifier(const Token& tok, const Lexer& lex, const FilterSchema& schema) {
  std::string text = tok.text;
  Ident id{Entity::kAttribute, text};
  size_t dot = text.find('.');
  if (dot != std::string::npos) {
    std::string entity = Lower(std::string_view(text).substr(0, dot));
    bool found = false;
    for (const auto& e : kEntities) {
      if (e.name == entity) {
        id.entity = e.entity;
        id.key = text.substr(dot + 1);
        found = true;
        break;
      }
    }
    bool run_only = id.entity == Entity::kMetric || id.entity == Entity::kParam ||
                    id.entity == Entity::kDataset;
    if (!found || (run_only && !schema.run_entities)) {
      return lex.Error("invalid entity type '" + entity + "' (expected " +
                           (schema.run_entities ? "metrics, params, tags, attributes or datasets"
                                                : "tags or attributes") +
                           ")",
                       tok.pos);
    }
  }
  if (id.key.empty()) return lex.Error("missing key after entity", tok.pos);
  if (id.entity == Entity::kAttribute) {
    if (schema.run_entities) id.key = CanonicalAttribute(id.key);
    if (!schema.IsString(id.key) && !schema.IsNumeric(id.key)) {
      std::string expected;
      for (auto k : schema.string_attributes) expected += (expected.empty() ? "" : ", ") + std::string(k);
      for (auto k : schema.numeric_attributes) expected += (expected.empty() ? "" : ", ") + std::string(k);
      return lex.Error("invalid attribute key '" + id.key + "' (expected " + expected + ")",
                       tok.pos);
    }
  }
  if (id.entity == Entity::kDataset &&
      std::find(std::begin(kDatasetKeys), std::end(kDatasetKeys), id.key) ==
          std::end(kDatasetKeys)) {
    return lex.Error("invalid dataset key '" + id.key + "' (expected name, digest or context)",
                     tok.pos);
  }
  return id;
}

bool ParseNumber(std::string_view s, double& out) {
  auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && std::isfinite(out);
}

class Parser {
 public:
  Parser(std::vector<Token> toks, const Lexer& lex, const FilterSchema& schema)
      : toks_(std::move(toks)), lex_(lex), schema_(schema) {}

  Result<std::vector<Comparison>> Run() {
    std::vector<Comparison> out;
    if (toks_.front().kind == TokKind::kEnd) return out;
    while (true) {
      KEEL_ASSIGN_OR_RETURN(Comparison c, ParseComparison());
      out.push_back(std::move(c));
      const Token& t = toks_[i_];
      if (t.kind == TokKind::kEnd) return out;
      if (t.kind == TokKind::kIdent && !t.quoted && Upper(t.text) == "AND") {
        ++i_;
        continue;
      }
      if (t.kind == TokKind::kIdent && !t.quoted && Upper(t.text) == "OR") {
        return lex_.Error("'OR' is not supported, only 'AND'", t.pos);
      }
      return lex_.Error("expected 'AND' or the end of the filter", t.pos);
    }
  }

 private:
  Result<Comparison> ParseComparison() {
    const Token& id_tok = toks_[i_];
    if (id_tok.kind != TokKind::kIdent) return lex_.Error("expected an identifier", id_tok.pos);
    Comparison c;
    KEEL_ASSIGN_OR_RETURN(Ident id, SplitIdentifier(id_tok, lex_, schema_));
    c.entity = id.entity;
    c.key = id.key;
    ++i_;
    const Token& op_tok = toks_[i_];
    size_t op_pos = op_tok.pos;
    std::string op;
    if (op_tok.kind == TokKind::kOp) {
      op = op_tok.text;
      ++i_;
    } else if (op_tok.kind == TokKind::kIdent && !op_tok.quoted) {
      op = Upper(op_tok.text);
      ++i_;
      if (op == "NOT") {
        const Token& in_tok = toks_[i_];
        if (in_tok.kind == TokKind::kIdent && Upper(in_tok.text) == "IN") {
          op = "NOT IN";
          ++i_;
        } else {
          return lex_.Error("expected 'IN' after 'NOT'", in_tok.pos);
        }
      }
    } else {
      return lex_.Error("expected a comparison operator", op_pos);
    }
    static const std::pair<std::string_view, Op> kOps[] = {
        {"=", Op::kEq},     {"!=", Op::kNe},       {"<", Op::kLt},   {"<=", Op::kLe},
        {">", Op::kGt},     {">=", Op::kGe},       {"LIKE", Op::kLike}, {"ILIKE", Op::kILike},
        {"IN", Op::kIn},    {"NOT IN", Op::kNotIn},
    };
    bool known = false;
    for (const auto& [name, value] : kOps) {
      if (name == op) {
        c.op = value;
        known = true;
      }
    }
    if (!known) return lex_.Error("invalid comparison operator '" + op + "'", op_pos);

    bool numeric = c.entity == Entity::kMetric ||
                   (c.entity == Entity::kAttribute && schema_.IsNumeric(c.key));
    bool numeric_op = c.op == Op::kEq || c.op == Op::kNe || c.op == Op::kLt || c.op == Op::kLe ||
                      c.op == Op::kGt || c.op == Op::kGe;
    bool string_op = c.op == Op::kEq || c.op == Op::kNe || c.op == Op::kLike ||
                     c.op == Op::kILike;
    bool list_op = c.op == Op::kIn || c.op == Op::kNotIn;
    bool list_ok = (c.entity == Entity::kAttribute && schema_.IsString(c.key)) ||
                   c.entity == Entity::kDataset;
    if (numeric ? !numeric_op : !(string_op || (list_op && list_ok))) {
      return lex_.Error("operator '" + op + "' is not valid for " + Describe(c), op_pos);
    }

    const Token& v = toks_[i_];
    if (list_op) {
      if (v.kind != TokKind::kLParen) return lex_.Error("expected '(' after IN", v.pos);
      ++i_;
      std::vector<std::string> values;
      while (true) {
        const Token& item = toks_[i_];
        if (item.kind != TokKind::kString && !(item.kind == TokKind::kIdent && item.quoted)) {
          return lex_.Error("expected a quoted string in the IN list", item.pos);
        }
        values.push_back(item.text);
        ++i_;
        const Token& sep = toks_[i_];
        if (sep.kind == TokKind::kComma) {
          ++i_;
          continue;
        }
        if (sep.kind == TokKind::kRParen) {
          ++i_;
          break;
        }
        return lex_.Error("expected ',' or ')' in the IN list", sep.pos);
      }
      c.value = std::move(values);
      return c;
    }
    if (numeric) {
      double d;
      if (v.kind != TokKind::kNumber || !ParseNumber(v.text, d)) {
        return lex_.Error("expected a number for " + Describe(c), v.pos);
      }
      c.value = d;
    } else {
      if (v.kind != TokKind::kString && !(v.kind == TokKind::kIdent && v.quoted)) {
        return lex_.Error("expected a quoted string for " + Describe(c), v.pos);
      }
      c.value = v.text;
    }
    ++i_;
    return c;
  }

  static std::string Describe(const Comparison& c) {
    switch (c.entity) {
      case Entity::kMetric: return "metric '" + c.key + "'";
      case Entity::kParam: return "param '" + c.key + "'";
      case Entity::kTag: return "tag '" + c.key + "'";
      case Entity::kDataset: return "dataset '" + c.key + "'";
      case Entity::kAttribute: return "attribute '" + c.key + "'";
    }
    return c.key;
  }

  std::vector<Token> toks_;
  const Lexer& lex_;
  const FilterSchema& schema_;
  size_t i_ = 0;
};

}  // namespace

bool FilterSchema::IsString(std::string_view key) const {
  return std::find(string_attributes.begin(), string_attributes.end(), key) !=
         string_attributes.end();
}
bool FilterSchema::IsNumeric(std::string_view key) const {
  return std::find(numeric_attributes.begin(), numeric_attributes.end(), key) !=
         numeric_attributes.end();
}

const FilterSchema& RunFilterSchema() {
  static const FilterSchema kSchema{
      {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"},
      {"start_time", "end_time"},
      true};
  return kSchema;
}
const FilterSchema& ExperimentFilterSchema() {
  static const FilterSchema kSchema{{"name"}, {"creation_time", "last_update_time"}, false};
  return kSchema;
}
const FilterSchema& RegisteredModelFilterSchema() {
  static const FilterSchema kSchema{{"name"}, {}, false};
  return kSchema;
}
const FilterSchema& ModelVersionFilterSchema() {
  static const FilterSchema kSchema{{"name", "run_id", "source_path"}, {"version_number"}, false};
  return kSchema;
}

Result<std::vector<Comparison>> ParseFilter(std::string_view filter, const FilterSchema& schema) {
  Lexer lex(filter, "filter");
  std::vector<Token> toks;
  KEEL_RETURN_IF_ERROR(lex.Run(toks));
  return Parser(std::move(toks), lex, schema).Run();
}

Result<std::vector<Comparison>> ParseRunFilter(std::string_view filter) {
  return ParseFilter(filter, RunFilterSchema());
}

Result<OrderBy> ParseRunOrderBy(std::string_view clause) {
  return ParseOrderBy(clause, RunFilterSchema());
}

Result<OrderBy> ParseOrderBy(std::string_view clause, const FilterSchema& schema) {
  Lexer lex(clause, "order_by clause");
  std::vector<Token> toks;
  KEEL_RETURN_IF_ERROR(lex.Run(toks));
  if (toks.empty() || toks[0].kind != TokKind::kIdent) {
    return lex.Error("expected an identifier", toks.empty() ? 0 : toks[0].pos);
  }
  KEEL_ASSIGN_OR_RETURN(Ident id, SplitIdentifier(toks[0], lex, schema));
  if (id.entity == Entity::kDataset) return lex.Error("cannot order by datasets", toks[0].pos);
  OrderBy ob{id.entity, id.key, true};
  size_t i = 1;
  if (toks[i].kind == TokKind::kIdent && !toks[i].quoted) {
    std::string dir = Upper(toks[i].text);
    if (dir == "DESC") {
      ob.ascending = false;
    } else if (dir != "ASC") {
      return lex.Error("expected ASC or DESC", toks[i].pos);
    }
    ++i;
  }
  if (toks[i].kind != TokKind::kEnd) return lex.Error("unexpected token", toks[i].pos);
  return ob;
}

Result<int64_t> DecodeOffsetToken(const std::string& token) {
  if (token.empty()) return int64_t{0};
  auto decoded = Base64Decode(token);
  if (!decoded) return InvalidArgument("Invalid page token, could not base64-decode");
  auto doc = ParseJsonObject(*decoded);
  if (!doc.ok()) return InvalidArgument("Invalid page token, decoded value=" + *decoded);
  auto offset = JsonInt64(doc->root(), "offset");
  if (!offset.ok() || !offset->has_value() || **offset < 0) {
    return InvalidArgument("Invalid page token, parsed value=" + *decoded);
  }
  return **offset;
}

std::string EncodeOffsetToken(int64_t offset) {
  return Base64Encode("{\"offset\": " + std::to_string(offset) + "}");
}

std::string_view OpSql(Op op) {
  switch (op) {
    case Op::kEq: return "=";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    case Op::kLike: return "LIKE";
    case Op::kILike: return "LIKE";
    case Op::kIn: return "IN";
    case Op::kNotIn: return "NOT IN";
  }
  return "=";
}

}  // namespace keel::tracking::internal
