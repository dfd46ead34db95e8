// Pieces: gridded window profiles (keel/monitor/window_profile.h) of fixed
// time buckets of one model version's prediction log, kept by the monitoring
// pass so that long windows (a day, a week) are merged from them instead of
// rereading the log every pass. Internal to src/monitor/live.
//
// A bucket [s, s + bucket) gets its piece once it ended `settle` ago (rows
// are logged asynchronously, and later than that they are not seen by the
// piece). Pieces are built newest first; once the newer pieces hold max_rows
// rows, older buckets keep only their row count (the windows stop merging
// there too). When labels were recorded for rows of a piece since it was
// built or last relabelled, its performance part is rebuilt from the
// bucket's labelled rows. A window is its pieces plus the log read for the
// partial bucket at its start and the unsettled tail at its end.
//
// Stored: pieces are kept in the store's window_profiles table (migration
// 0012, EncodeProfile), so a new cache for the same version (a restarted
// server, a new monitoring leader) starts from them instead of the log. The
// first Refresh loads the complete buckets of the window stored with this
// bucket length; each Refresh then writes, in one transaction, the pieces it
// built or relabelled (with the time they were, so labels recorded while no
// cache ran are found at the next load) and deletes the version's rows of
// other bucket lengths or older than the window. Rows per version: at most
// the window's buckets plus one (DropStalePieces removes those of versions
// no longer monitored). Store errors there do not fail Refresh: a stored
// piece that cannot be read is rebuilt from the log, a failed load is
// retried next Refresh, a failed write keeps its pieces pending for the
// next; TakeStoreErrors() says what went wrong.
//
// Memory: per full piece, per numeric part, the grid bins in use (12-16
// bytes each, at most the grid's size) and its categories; a bucket's rows
// are held as JSON while its piece is built, the encoded pieces of one
// Refresh while they are written.
//
// Threads: one owner (the monitoring pass thread); no locking (the store is
// shared through its own Database).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "keel/core/result.h"
#include "keel/monitor/window_profile.h"
#include "keel/store/store.h"

namespace keel::monitor::internal {

// The bucket length for windows up to `longest_ms`: the largest of 1 minute,
// 5 minutes, 15 minutes and 1 hour that fits 24 times (at least 1 minute).
int64_t PieceBucket(int64_t longest_ms);

// Deletes the stored pieces of every model version whose bucket starts
// before `before_ms` (no window reaches back there).
[[nodiscard]] Status DropStalePieces(store::Database& db, int64_t before_ms);

class PieceCache {
 public:
  PieceCache(std::string model, std::string version, int64_t bucket_ms, int64_t settle_ms)
      : model_(std::move(model)),
        version_(std::move(version)),
        bucket_ms_(bucket_ms),
        settle_ms_(settle_ms) {}

  int64_t bucket_ms() const { return bucket_ms_; }

  // Brings the pieces up to date for windows up to `longest_ms` ending at
  // `now_ms`: loads the stored ones (first call), drops pieces older than
  // the window, builds the missing ones (newest first, full up to max_rows
  // rows, counted beyond), follows labels, stores what changed. An error
  // reading the log fails it (the pieces built so far are kept and stored);
  // store errors about the pieces themselves do not (TakeStoreErrors).
  [[nodiscard]] Status Refresh(store::Database& db, const ProfileLayout& layout, int64_t now_ms,
                               int64_t longest_ms, uint64_t max_rows);

  // The errors loading or storing pieces since the last call, one line each.
  std::vector<std::string> TakeStoreErrors() { return std::move(store_errors_); }

  // Rows of the pieces inside [from_ms, now_ms) (the partial buckets not counted).
  uint64_t PieceRows(int64_t from_ms) const;

  // The profile of [from_ms, now_ms): pieces newest first until `max_rows`
  // rows or a counted-only piece (then the older ones and the window's head
  // are left out and *total_rows still counts them), the log read for the
  // rest. FailedPrecondition when a bucket has no piece (Refresh first).
  [[nodiscard]] Result<WindowProfile> Window(store::Database& db, const ProfileLayout& layout,
                                             int64_t from_ms, int64_t now_ms, uint64_t max_rows,
                                             uint64_t* total_rows) const;

 private:
  int64_t CompleteUntil(int64_t now_ms) const;
  [[nodiscard]] Result<WindowProfile> Read(store::Database& db, const ProfileLayout& layout,
                                           int64_t from_ms, int64_t to_ms) const;

  std::string model_;
  std::string version_;
  int64_t bucket_ms_;
  int64_t settle_ms_;
  struct Piece {
    uint64_t rows = 0;
    bool counted_only = false;  // beyond max_rows: no profile kept
    WindowProfile profile;
    int64_t labels_ms = 0;  // labels recorded before it (less settle) are in the profile
    bool stored = false;    // the store's row is this piece
  };
  [[nodiscard]] Status Build(store::Database& db, const ProfileLayout& layout, int64_t start,
                             Piece& piece);
  [[nodiscard]] Status Count(store::Database& db, int64_t start, Piece& piece);
  [[nodiscard]] Status Relabel(store::Database& db, const ProfileLayout& layout, int64_t start,
                               Piece& piece);
  [[nodiscard]] Status Load(store::Database& db, const ProfileLayout& layout, int64_t first,
                            int64_t until);
  [[nodiscard]] Status Save(store::Database& db, const ProfileLayout& layout, int64_t first,
                            int64_t now_ms);

  std::map<int64_t, Piece> pieces_;  // bucket start -> its piece
  // Labels recorded before it (less settle) are in every piece; 0 before
  // the first Refresh.
  int64_t labels_checked_ms_ = 0;
  bool loaded_ = false;  // the stored pieces were read
  bool prune_ = true;    // the store may hold rows of buckets dropped here
  std::vector<std::string> store_errors_;
};

}  // namespace keel::monitor::internal
