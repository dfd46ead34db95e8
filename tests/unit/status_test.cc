#include "keel/core/status.h"

#include <gtest/gtest.h>

#include "keel/core/result.h"

namespace keel {
namespace {

TEST(StatusTest, OkHasNoMessageAndMapsTo200) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(HttpStatusOf(s), 200);
}

TEST(StatusTest, CodeTableMatchesMlflow) {
  EXPECT_EQ(HttpStatusOf(NotFound("x")), 404);
  EXPECT_EQ(MlflowErrorCodeOf(NotFound("x")), "RESOURCE_DOES_NOT_EXIST");
  EXPECT_EQ(HttpStatusOf(InvalidArgument("x")), 400);
  EXPECT_EQ(MlflowErrorCodeOf(InvalidArgument("x")), "INVALID_PARAMETER_VALUE");
  // MLflow answers 400 (not 409) for a duplicate name.
  EXPECT_EQ(HttpStatusOf(AlreadyExists("x")), 400);
  EXPECT_EQ(MlflowErrorCodeOf(AlreadyExists("x")), "RESOURCE_ALREADY_EXISTS");
  EXPECT_EQ(HttpStatusOf(Unauthenticated("x")), 401);
  EXPECT_EQ(HttpStatusOf(PermissionDenied("x")), 403);
  EXPECT_EQ(HttpStatusOf(ResourceExhausted("x")), 413);
  EXPECT_EQ(HttpStatusOf(Unavailable("x")), 503);
  EXPECT_EQ(HttpStatusOf(Internal("x")), 500);
  EXPECT_EQ(MlflowErrorCodeOf(Internal("x")), "INTERNAL_ERROR");
}

TEST(StatusTest, MlflowCodeOverrideKeepsHttpStatusOfCode) {
  Status s = NotFound("Registered model alias a not found.").WithMlflowCode("INVALID_PARAMETER_VALUE");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(MlflowErrorCodeOf(s), "INVALID_PARAMETER_VALUE");
}

TEST(StatusTest, WithContextPrefixesMessage) {
  Status s = Internal("disk full").WithContext("migration 2");
  EXPECT_EQ(s.message(), "migration 2: disk full");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.ToString(), "INTERNAL: migration 2: disk full");
}

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int& out) {
  KEEL_ASSIGN_OR_RETURN(int h, Half(x));
  KEEL_ASSIGN_OR_RETURN(out, Half(h));
  return OkStatus();
}

TEST(ResultTest, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, out).ok());
  EXPECT_EQ(out, 2);
  Status s = Quarter(6, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd");
}

}  // namespace
}  // namespace keel

namespace keel {
namespace {

TEST(StatusCodeOfTest, ReadsMlflowErrorCodesThenHttpStatus) {
  EXPECT_EQ(StatusCodeOf("RESOURCE_ALREADY_EXISTS", 400), StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeOf("RESOURCE_DOES_NOT_EXIST", 404), StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeOf("INVALID_PARAMETER_VALUE", 400), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeOf("INVALID_STATE", 409), StatusCode::kFailedPrecondition);
  // Every code keel sends survives the round trip.
  for (StatusCode c : {StatusCode::kInvalidArgument, StatusCode::kNotFound,
                       StatusCode::kAlreadyExists, StatusCode::kPermissionDenied,
                       StatusCode::kUnauthenticated, StatusCode::kResourceExhausted,
                       StatusCode::kUnavailable, StatusCode::kInternal}) {
    const Status s(c, "x");
    EXPECT_EQ(StatusCodeOf(MlflowErrorCodeOf(s), HttpStatusOf(s)), c) << s.ToString();
  }
  EXPECT_EQ(StatusCodeOf("", 404), StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeOf("SOMETHING_NEW", 400), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeOf("", 502), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace keel
