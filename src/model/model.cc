#include "keel/model/model.h"

namespace keel::model {

bool Model::has_categorical() const {
  for (const Tree& t : trees) {
    for (const Node& n : t.nodes) {
      if (n.kind == Node::Kind::kCategorical) return true;
    }
  }
  return false;
}

const char* TransformName(Transform t) {
  switch (t) {
    case Transform::kIdentity:
      return "identity";
    case Transform::kSigmoid:
      return "sigmoid";
    case Transform::kSoftmax:
      return "softmax";
    case Transform::kSoftmaxArgmax:
      return "softmax_argmax";
    case Transform::kExp:
      return "exp";
    case Transform::kHinge:
      return "hinge";
  }
  return "unknown";
}

const char* TaskName(Task t) {
  switch (t) {
    case Task::kRegression:
      return "regression";
    case Task::kBinary:
      return "binary";
    case Task::kMulticlass:
      return "multiclass";
    case Task::kRanking:
      return "ranking";
  }
  return "unknown";
}

}  // namespace keel::model
