#include "hetrain/model/plugin_loader.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <dlfcn.h>

#include <vector>

namespace hetrain {
namespace {

struct PluginName {
  std::string library, model; // model empty: the library's only one
};

PluginName split_spec(const std::string &spec) {
  // LIB.so:NAME; a path may not contain ':' here (as in PATH-like lists).
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos)
    return {spec, ""};
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

const PluginModels *open_plugin(const std::string &library) {
  // A bare name would be looked up in the system's library path; a plugin is a file.
  const std::string path = library.find('/') == std::string::npos ? "./" + library : library;
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    throw UserError(fmt::format("--model-plugin {}: cannot load it ({})", library, dlerror()));
  using ListFn = const PluginModels *(*)();
  auto list = reinterpret_cast<ListFn>(dlsym(handle, kModelPluginSymbol));
  if (list == nullptr)
    throw UserError(fmt::format("--model-plugin {}: not a hetrain model plugin (it has no {} "
                                "function; see include/hetrain/model/plugin.h)",
                                library, kModelPluginSymbol));
  const PluginModels *models = list();
  if (models == nullptr || models->models == nullptr)
    throw UserError(fmt::format("--model-plugin {}: its model list is empty", library));
  if (models->api_version != kModelPluginApiVersion)
    throw UserError(fmt::format("--model-plugin {}: built for plugin API version {}, this "
                                "hetrain has version {}; rebuild it against this hetrain's "
                                "include/hetrain/model/plugin.h",
                                library, models->api_version, kModelPluginApiVersion));
  return models;
}

} // namespace

std::shared_ptr<Model> load_plugin_model(const std::string &spec, const ModelShape &shape) {
  const PluginName name = split_spec(spec);
  const PluginModels *models = open_plugin(name.library);
  std::vector<const PluginModel *> found;
  std::string names;
  for (const PluginModel *m = models->models; m->name != nullptr; ++m) {
    names += fmt::format("{}{}", names.empty() ? "" : ", ", m->name);
    if (name.model.empty() || name.model == m->name)
      found.push_back(m);
  }
  if (found.size() != 1 || found.front()->make == nullptr)
    throw UserError(name.model.empty()
                        ? fmt::format("--model-plugin {}: holds several models ({}); name one as "
                                      "{}:NAME",
                                      name.library, names, name.library)
                        : fmt::format("--model-plugin {}: has no model '{}' (it has: {})",
                                      name.library, name.model, names.empty() ? "none" : names));
  std::shared_ptr<Model> model;
  try {
    model = found.front()->make(shape);
  } catch (const std::exception &e) {
    throw UserError(fmt::format("--model-plugin {}: model '{}' could not be built for input "
                                "{}x{}x{} with {} outputs: {}",
                                name.library, found.front()->name, shape.in_channels, shape.height,
                                shape.width, shape.outputs, e.what()));
  }
  if (!model)
    throw UserError(fmt::format("--model-plugin {}: model '{}' returned no model", name.library,
                                found.front()->name));
  return model;
}

} // namespace hetrain
