// `--model-plugin LIB.so[:NAME]`: loads a C++ model from a shared library built against
// hetrain/model/plugin.h. The library stays loaded for the life of the process (the model's code
// lives in it).
#pragma once

#include "hetrain/model/plugin.h"

#include <memory>
#include <string>

namespace hetrain {

// Throws UserError naming the problem: a missing or unloadable library, one without the
// hetrain_model_plugin list, another API version, or a NAME it does not have (listing those it
// has). Without NAME the library must hold exactly one model.
std::shared_ptr<Model> load_plugin_model(const std::string &spec, const ModelShape &shape);

} // namespace hetrain
