// Registration checks: a new model version keel can load must load and score
// its input example before it becomes READY.
#pragma once

#include "keel/registry/registry.h"
#include "keel/serve/engine.h"

namespace keel::api {

class App;

// The validator App::Open installs on its registry. Sources inside the
// artifact root (mlflow-artifacts:/..., runs:/<id>/...) holding a keel,
// xgboost or lightgbm model are loaded and checked; other sources (other
// flavors, other stores, paths that do not exist) are accepted unchecked, as
// MLflow accepts them. Sources that try to leave the artifact root fail.
registry::VersionValidator MakeModelValidator(App& app);

// Where the serving engine finds a version's files: the same sources,
// required to be inside the artifact root and loadable by keel.
serve::SourceResolver MakeSourceResolver(App& app);

}  // namespace keel::api
