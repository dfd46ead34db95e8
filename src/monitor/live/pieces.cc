// Pieces of the prediction log for long monitoring windows (src/monitor/live/pieces.h).
#include "src/monitor/live/pieces.h"

#include <algorithm>

#include "keel/serve/prediction_log.h"

namespace keel::monitor::internal {
namespace {

constexpr size_t kAllRows = size_t{1} << 62;

int64_t FloorTo(int64_t t, int64_t step) {
  return t >= 0 ? t / step * step : -((-t + step - 1) / step) * step;
}
int64_t CeilTo(int64_t t, int64_t step) { return -FloorTo(-t, step); }

ProfileOptions Gridded() {
  ProfileOptions o;
  o.exact_limit = 0;
  return o;
}

}  // namespace

int64_t PieceBucket(int64_t longest_ms) {
  int64_t bucket = 60'000;
  for (int64_t b : {300'000, 900'000, 3'600'000}) {
    if (b * 24 <= longest_ms) bucket = b;
  }
  return bucket;
}

Status DropStalePieces(store::Database& db, int64_t before_ms) {
  return db.Write([&](store::Connection& c) {
    return c.Exec("DELETE FROM window_profiles WHERE start_time < ?", {store::Value(before_ms)});
  });
}

int64_t PieceCache::CompleteUntil(int64_t now_ms) const {
  return FloorTo(now_ms - settle_ms_, bucket_ms_);
}

Result<WindowProfile> PieceCache::Read(store::Database& db, const ProfileLayout& layout,
                                       int64_t from_ms, int64_t to_ms) const {
  WindowProfile p = EmptyProfile(layout, Gridded());
  if (from_ms >= to_ms) return p;
  serve::PredictionQuery q;
  q.model = model_;
  q.version = version_;
  q.from_ms = from_ms;
  q.to_ms = to_ms;
  q.limit = kAllRows;
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::LoggedPrediction> rows, serve::ReadPredictions(db, q));
  for (const serve::LoggedPrediction& row : rows) AddToProfile(layout, row, p);
  return p;
}

Status PieceCache::Build(store::Database& db, const ProfileLayout& layout, int64_t start,
                         Piece& piece) {
  KEEL_ASSIGN_OR_RETURN(piece.profile, Read(db, layout, start, start + bucket_ms_));
  piece.rows = piece.profile.rows;
  piece.counted_only = false;
  return OkStatus();
}

Status PieceCache::Count(store::Database& db, int64_t start, Piece& piece) {
  serve::PredictionQuery q;
  q.model = model_;
  q.version = version_;
  q.from_ms = start;
  q.to_ms = start + bucket_ms_;
  KEEL_ASSIGN_OR_RETURN(piece.rows, serve::CountPredictions(db, q));
  piece.counted_only = true;
  piece.profile = WindowProfile();
  return OkStatus();
}

Status PieceCache::Relabel(store::Database& db, const ProfileLayout& layout, int64_t start,
                           Piece& piece) {
  serve::PredictionQuery q;
  q.model = model_;
  q.version = version_;
  q.from_ms = start;
  q.to_ms = start + bucket_ms_;
  q.labelled_only = true;
  q.limit = kAllRows;
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::LoggedPrediction> rows, serve::ReadPredictions(db, q));
  ClearPerformance(layout, piece.profile);
  for (const serve::LoggedPrediction& row : rows) AddPerformance(layout, row, piece.profile);
  return OkStatus();
}

Status PieceCache::Load(store::Database& db, const ProfileLayout& layout, int64_t first,
                        int64_t until) {
  struct Row {
    int64_t start;
    int64_t rows;
    bool counted_only;
    std::string profile;
    int64_t labels_ms;
  };
  std::vector<Row> rows;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    rows.clear();
    return c.Query(
        "SELECT start_time, row_count, counted_only, profile, labels_time FROM window_profiles "
        "WHERE model = ? AND version = ? AND bucket_ms = ? AND start_time >= ? AND start_time < ?",
        {store::Value(model_), store::Value(version_), store::Value(bucket_ms_),
         store::Value(first), store::Value(until - bucket_ms_ + 1)},
        [&](const store::RowView& row) {
          rows.push_back(
              {row.Int(0), row.Int(1), row.Int(2) != 0, std::string(row.Bytes(3)), row.Int(4)});
          return OkStatus();
        });
  }));
  for (Row& row : rows) {
    if (pieces_.count(row.start) > 0) continue;  // built here meanwhile
    if (row.rows < 0) {                          // rebuilt from the log (and its row replaced)
      store_errors_.push_back("the stored piece at " + std::to_string(row.start) + ": " +
                              std::to_string(row.rows) + " rows; rebuilding it from the log");
      continue;
    }
    Piece piece;
    piece.rows = static_cast<uint64_t>(row.rows);
    piece.counted_only = row.counted_only;
    piece.labels_ms = row.labels_ms;
    piece.stored = true;
    if (!row.counted_only) {
      Result<WindowProfile> profile = DecodeProfile(row.profile, layout);
      if (profile.ok() && profile->rows != piece.rows) {
        profile = InvalidArgument("stored window profile: " + std::to_string(profile->rows) +
                                  " rows, its row says " + std::to_string(row.rows));
      }
      if (!profile.ok()) {  // rebuilt from the log (and its row replaced)
        store_errors_.push_back("the stored piece at " + std::to_string(row.start) + ": " +
                                profile.status().message() + "; rebuilding it from the log");
        continue;
      }
      piece.profile = std::move(profile).value();
      // Labels recorded since it was stored are looked for from the oldest piece on.
      labels_checked_ms_ =
          labels_checked_ms_ == 0 ? row.labels_ms : std::min(labels_checked_ms_, row.labels_ms);
    }
    pieces_.emplace(row.start, std::move(piece));
  }
  return OkStatus();
}

Status PieceCache::Save(store::Database& db, const ProfileLayout& layout, int64_t first,
                        int64_t now_ms) {
  std::vector<std::pair<int64_t, std::string>> blobs;  // bucket start, encoded profile
  for (const auto& [start, piece] : pieces_) {
    if (piece.stored) continue;
    blobs.emplace_back(start,
                       piece.counted_only ? std::string() : EncodeProfile(piece.profile, layout));
  }
  if (blobs.empty() && !prune_) return OkStatus();
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    if (prune_) {
      KEEL_RETURN_IF_ERROR(
          c.Exec("DELETE FROM window_profiles WHERE model = ? AND version = ? AND "
                 "(bucket_ms <> ? OR start_time < ?)",
                 {store::Value(model_), store::Value(version_), store::Value(bucket_ms_),
                  store::Value(first)}));
    }
    for (const auto& [start, blob] : blobs) {
      const Piece& piece = pieces_.at(start);
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO window_profiles(model, version, bucket_ms, start_time, row_count, "
          "counted_only, profile, labels_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (model, version, bucket_ms, start_time) DO UPDATE SET "
          "row_count = excluded.row_count, counted_only = excluded.counted_only, "
          "profile = excluded.profile, labels_time = excluded.labels_time, "
          "updated_time = excluded.updated_time",
          {store::Value(model_), store::Value(version_), store::Value(bucket_ms_),
           store::Value(start), store::Value(static_cast<int64_t>(piece.rows)),
           store::Value(int64_t{piece.counted_only ? 1 : 0}), store::Value(store::Blob{blob}),
           store::Value(piece.labels_ms), store::Value(now_ms)}));
    }
    return OkStatus();
  }));
  for (const auto& [start, blob] : blobs) pieces_.at(start).stored = true;
  prune_ = false;
  return OkStatus();
}

Status PieceCache::Refresh(store::Database& db, const ProfileLayout& layout, int64_t now_ms,
                           int64_t longest_ms, uint64_t max_rows) {
  const int64_t first = CeilTo(now_ms - longest_ms, bucket_ms_);
  const int64_t until = CompleteUntil(now_ms);
  if (!loaded_) {
    const Status loaded = Load(db, layout, first, until);
    if (loaded.ok()) {
      loaded_ = true;
    } else {  // built from the log this time
      store_errors_.push_back("loading its stored pieces: " + loaded.message());
    }
  }
  const auto old_end = pieces_.lower_bound(first);
  if (old_end != pieces_.begin()) prune_ = true;
  pieces_.erase(pieces_.begin(), old_end);
  // Pieces built now hold every label recorded so far; later passes look for
  // labels recorded since the last complete refresh (or, after a load, since
  // the oldest stored piece took in labels), with a margin of `settle` for labels
  // stamped before they were written.
  if (labels_checked_ms_ == 0) labels_checked_ms_ = now_ms;
  std::map<int64_t, int64_t> relabel;  // bucket start -> its newest label's time
  if (!pieces_.empty()) {
    KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
      relabel.clear();
      return c.Query(
          "SELECT p.time, l.time FROM labels l JOIN predictions p ON p.request_id = l.request_id "
          "WHERE l.time >= ? AND p.model = ? AND p.version = ? AND p.time >= ? AND p.time < ?",
          {store::Value(labels_checked_ms_ - settle_ms_), store::Value(model_),
           store::Value(version_), store::Value(first), store::Value(until)},
          [&](const store::RowView& row) {
            int64_t& newest =
                relabel.try_emplace(FloorTo(row.Int(0), bucket_ms_), row.Int(1)).first->second;
            newest = std::max(newest, row.Int(1));
            return OkStatus();
          });
    }));
  }
  const Status built = [&]() -> Status {
    uint64_t newer = 0;  // rows of the pieces after this one
    for (int64_t s = until - bucket_ms_; s >= first; s -= bucket_ms_) {
      auto it = pieces_.find(s);
      const bool fresh = it == pieces_.end();
      const bool full = newer < max_rows;
      if ((full && (fresh || it->second.counted_only)) ||
          (!full && (fresh || !it->second.counted_only))) {
        // A new piece replaces the entry only once complete (an error leaves the old one).
        Piece piece;
        if (full) {
          KEEL_RETURN_IF_ERROR(Build(db, layout, s, piece));
        } else {
          KEEL_RETURN_IF_ERROR(Count(db, s, piece));  // beyond max_rows: the count is enough
        }
        piece.labels_ms = now_ms;
        it = pieces_.insert_or_assign(s, std::move(piece)).first;
      } else if (!it->second.counted_only) {
        const auto labelled = relabel.find(s);
        if (labelled != relabel.end() && labelled->second >= it->second.labels_ms - settle_ms_) {
          KEEL_RETURN_IF_ERROR(Relabel(db, layout, s, it->second));
          it->second.labels_ms = now_ms;
          it->second.stored = false;
        }
      }
      newer += it->second.rows;
    }
    return OkStatus();
  }();
  // What was built before an error is complete, and stored too.
  const Status saved = Save(db, layout, first, now_ms);
  if (!saved.ok()) store_errors_.push_back("storing its pieces: " + saved.message());
  KEEL_RETURN_IF_ERROR(built);
  labels_checked_ms_ = now_ms;
  return OkStatus();
}

uint64_t PieceCache::PieceRows(int64_t from_ms) const {
  uint64_t rows = 0;
  for (auto it = pieces_.lower_bound(CeilTo(from_ms, bucket_ms_)); it != pieces_.end(); ++it) {
    rows += it->second.rows;
  }
  return rows;
}

Result<WindowProfile> PieceCache::Window(store::Database& db, const ProfileLayout& layout,
                                         int64_t from_ms, int64_t now_ms, uint64_t max_rows,
                                         uint64_t* total_rows) const {
  const int64_t head_end = CeilTo(from_ms, bucket_ms_);
  const int64_t until = std::max(CompleteUntil(now_ms), head_end);
  for (int64_t s = head_end; s + bucket_ms_ <= until; s += bucket_ms_) {
    if (pieces_.count(s) == 0) {
      return FailedPrecondition("no piece for the bucket at " + std::to_string(s) +
                                " (call Refresh first)");
    }
  }
  KEEL_ASSIGN_OR_RETURN(WindowProfile profile, Read(db, layout, until, now_ms));
  *total_rows = profile.rows;
  bool truncated = false;
  for (auto it = pieces_.lower_bound(until); it != pieces_.lower_bound(head_end);) {
    --it;
    *total_rows += it->second.rows;
    truncated = truncated || it->second.counted_only || profile.rows >= max_rows;
    if (!truncated) profile.Merge(it->second.profile, layout);
  }
  if (head_end > from_ms) {
    const int64_t head_to = std::min(head_end, now_ms);
    if (truncated || profile.rows >= max_rows) {
      serve::PredictionQuery q;
      q.model = model_;
      q.version = version_;
      q.from_ms = from_ms;
      q.to_ms = head_to;
      KEEL_ASSIGN_OR_RETURN(uint64_t head_rows, serve::CountPredictions(db, q));
      *total_rows += head_rows;
    } else {
      KEEL_ASSIGN_OR_RETURN(WindowProfile head, Read(db, layout, from_ms, head_to));
      *total_rows += head.rows;
      profile.Merge(head, layout);
    }
  }
  return profile;
}

}  // namespace keel::monitor::internal
