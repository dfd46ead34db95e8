// Pieces of the prediction log for long monitoring windows (src/monitor/live/pieces.h).
#include "src/monitor/live/pieces.h"

#include <algorithm>
#include <set>

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

Status PieceCache::Refresh(store::Database& db, const ProfileLayout& layout, int64_t now_ms,
                           int64_t longest_ms, uint64_t max_rows) {
  const int64_t first = CeilTo(now_ms - longest_ms, bucket_ms_);
  const int64_t until = CompleteUntil(now_ms);
  pieces_.erase(pieces_.begin(), pieces_.lower_bound(first));
  // Pieces built now hold every label recorded so far; later passes look for
  // labels recorded since the last complete refresh, with a margin of
  // `settle` for labels stamped before they were written.
  if (labels_checked_ms_ == 0) labels_checked_ms_ = now_ms;
  std::set<int64_t> relabel;
  if (!pieces_.empty()) {
    KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
      return c.Query(
          "SELECT p.time FROM labels l JOIN predictions p ON p.request_id = l.request_id "
          "WHERE l.time >= ? AND p.model = ? AND p.version = ? AND p.time >= ? AND p.time < ?",
          {store::Value(labels_checked_ms_ - settle_ms_), store::Value(model_),
           store::Value(version_), store::Value(first), store::Value(until)},
          [&](const store::RowView& row) {
            relabel.insert(FloorTo(row.Int(0), bucket_ms_));
            return OkStatus();
          });
    }));
  }
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
      it = pieces_.insert_or_assign(s, std::move(piece)).first;
    } else if (!it->second.counted_only && relabel.count(s) > 0) {
      KEEL_RETURN_IF_ERROR(Relabel(db, layout, s, it->second));
    }
    newer += it->second.rows;
  }
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
