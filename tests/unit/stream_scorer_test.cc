// StreamScorer's lifecycle (keel/stream/stream.h) without a NATS server: a
// scorer starts once, so a second Start() after a failed one is refused
// rather than run on a closed connection. Scoring itself runs against a real
// nats-server in tests/e2e/test_stream.py.
#include <gtest/gtest.h>

#include <filesystem>

#include "keel/core/clock.h"
#include "keel/registry/registry.h"
#include "keel/serve/engine.h"
#include "keel/stream/stream.h"
#include "test_util.h"

namespace keel::stream {
namespace {

TEST(StreamScorerTest, StartsOnceEvenAfterAFailedStart) {
  testing::TempDir dir;
  std::unique_ptr<store::Database> db = testing::OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(1000);
  registry::RegistryService registry(*db, clock);
  serve::SourceResolver resolve =
      [&](const registry::ModelVersion& v) -> Result<std::filesystem::path> {
    return dir.path() / v.source;
  };
  serve::ServingEngine engine(registry, resolve, clock, nullptr, {});
  StreamOptions options;  // no model reference: Start fails before connecting
  options.stream = "IN";
  options.durable = "scorers";
  StreamScorer scorer(engine, nullptr, nullptr, clock, options);
  const Status first = scorer.Start();
  EXPECT_EQ(first.code(), StatusCode::kInvalidArgument) << first.ToString();
  EXPECT_NE(first.message().find("no model reference"), std::string::npos) << first.ToString();
  const Status second = scorer.Start();
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition) << second.ToString();
  EXPECT_NE(second.message().find("starts once"), std::string::npos) << second.ToString();
  const Status stopped = scorer.Stop();  // nothing running: nothing to drain
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace keel::stream
