#include "hetrain/checkpoint/checkpoint.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/check.h"
#include "hetrain/common/crash_guard.h"
#include "hetrain/common/error.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/hdf5_util.h"
#include "hetrain/common/log.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <map>
#include <thread>

namespace hetrain {
namespace {

// Group creation order is tracked so that parameters come back in the model's order.
h5::Handle create_ordered_group(hid_t loc, const std::string &name) {
  h5::Handle plist(CHECK_HDF5(H5Pcreate(H5P_GROUP_CREATE)), H5Pclose);
  CHECK_HDF5(H5Pset_link_creation_order(plist, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  return h5::Handle(CHECK_HDF5(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, plist, H5P_DEFAULT)),
                    H5Gclose);
}

void write_tensor(hid_t group, const std::string &name, const torch::Tensor &tensor) {
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  if (t.scalar_type() == torch::kInt64) {
    h5::write_dataset(group, name, h5::Kind::I64, t.data_ptr<int64_t>(), dims);
  } else {
    t = t.to(torch::kFloat32).contiguous();
    h5::write_dataset(group, name, h5::Kind::F32, t.data_ptr<float>(), dims);
  }
}

torch::Tensor read_tensor(hid_t group, const std::string &name, const std::string &path) {
  h5::Handle dataset = h5::open_dataset(group, name, path);
  h5::DatasetShape shape = h5::dataset_shape(dataset);
  std::vector<int64_t> sizes(shape.dims.begin(), shape.dims.end());
  if (shape.type_class == H5T_INTEGER) {
    auto t = torch::empty(sizes, torch::kInt64);
    h5::read_dataset(dataset, h5::Kind::I64, t.data_ptr<int64_t>());
    return t;
  }
  if (shape.type_class != H5T_FLOAT)
    throw UserError(fmt::format("{}: tensor '{}' is neither float nor integer", path, name));
  auto t = torch::empty(sizes, torch::kFloat32);
  h5::read_dataset(dataset, h5::Kind::F32, t.data_ptr<float>());
  return t;
}

NamedTensors read_group_tensors(hid_t file, const std::string &group_name,
                                const std::string &path) {
  h5::Handle group = h5::open_group(file, group_name, path);
  NamedTensors out;
  for (const std::string &name : h5::list_children(group))
    out.emplace_back(name, read_tensor(group, name, path));
  return out;
}

void write_state_groups(hid_t parent,
                        const std::vector<std::pair<std::string, NamedTensors>> &state) {
  for (const auto &[state_name, tensors] : state) {
    h5::Handle group = create_ordered_group(parent, state_name);
    for (const auto &[name, tensor] : tensors)
      write_tensor(group, name, tensor);
  }
}

void write_trainer_optimizers(hid_t file, const CheckpointContents &c) {
  h5::Handle all = h5::create_group(file, "trainer_optimizers");
  h5::write_attr(all, "kind", c.trainer_optimizer_kind);
  for (const TrainerOptimizerContents &t : c.trainer_optimizers) {
    h5::Handle one = h5::create_group(all, fmt::format("rank{}", t.rank));
    h5::write_attr(one, "step", t.steps);
    write_state_groups(one, t.state);
  }
}

void read_trainer_optimizers(hid_t file, CheckpointContents &c, const std::string &path) {
  h5::Handle all = h5::open_group(file, "trainer_optimizers", path);
  c.trainer_optimizer_kind = h5::read_attr_string(all, "kind");
  for (const std::string &name : h5::list_children(all)) {
    TrainerOptimizerContents t;
    size_t used = 0;
    try {
      if (name.rfind("rank", 0) == 0)
        t.rank = std::stoi(name.substr(4), &used);
    } catch (const std::exception &) {
      used = 0;
    }
    if (used == 0 || 4 + used != name.size() || t.rank < 1)
      throw UserError(
          fmt::format("/trainer_optimizers/{}: not rank<R> with a trainer's rank R", name));
    h5::Handle one = h5::open_group(all, name, path);
    t.steps = h5::read_attr_int(one, "step");
    for (const std::string &state_name : h5::list_children(one))
      t.state.emplace_back(state_name, read_group_tensors(one, state_name, path));
    c.trainer_optimizers.push_back(std::move(t));
  }
}

h5::Handle epoch_record_type() {
  h5::Handle type(CHECK_HDF5(H5Tcreate(H5T_COMPOUND, sizeof(EpochRecord))), H5Tclose);
  auto field = [&](const char *name, size_t offset, hid_t t) {
    CHECK_HDF5(H5Tinsert(type, name, offset, t));
  };
  field("epoch", offsetof(EpochRecord, epoch), H5T_NATIVE_INT64);
  field("samples", offsetof(EpochRecord, samples), H5T_NATIVE_INT64);
  field("train_loss", offsetof(EpochRecord, train_loss), H5T_NATIVE_DOUBLE);
  field("train_accuracy", offsetof(EpochRecord, train_accuracy), H5T_NATIVE_DOUBLE);
  field("test_loss", offsetof(EpochRecord, test_loss), H5T_NATIVE_DOUBLE);
  field("test_accuracy", offsetof(EpochRecord, test_accuracy), H5T_NATIVE_DOUBLE);
  field("seconds", offsetof(EpochRecord, seconds), H5T_NATIVE_DOUBLE);
  field("samples_per_sec", offsetof(EpochRecord, samples_per_sec), H5T_NATIVE_DOUBLE);
  return type;
}

} // namespace

NamedTensors named_buffers(const torch::nn::Module &model) {
  NamedTensors out;
  for (const auto &item : model.named_buffers(/*recurse=*/true))
    out.emplace_back(item.key(), item.value());
  return out;
}

void write_checkpoint(const std::string &path, const CheckpointContents &c) {
  if (const int64_t slow = fault_slow_checkpoint_seconds(); slow > 0) {
    // Testing hook (--fault-slow-checkpoint): a slow disk, during which rank 0 sends no round
    // command but keeps its heartbeat (mpi.rank0_lost).
    log_warn("--fault-slow-checkpoint: this write takes {} s more", slow);
    std::this_thread::sleep_for(std::chrono::seconds(slow));
  }
  AtomicOutputFile out(path);
  {
    h5::Handle file = h5::create_memory_file();
    h5::write_attr(file, "format", "hetrain-checkpoint");
    h5::write_attr(file, "format_version", kCheckpointFormatVersion);
    h5::write_attr(file, "hetrain_version", HETRAIN_VERSION);
    h5::write_attr(file, "model", c.model.label());
    h5::write_attr(file, "model_fingerprint", c.model_fingerprint);
    h5::write_attr(file, "in_channels", c.model.in_channels);
    h5::write_attr(file, "height", c.model.height);
    h5::write_attr(file, "width", c.model.width);
    h5::write_attr(file, "num_classes", c.model.num_classes);
    h5::write_attr(file, "norm_mean", c.norm_mean);
    h5::write_attr(file, "norm_std", c.norm_std);
    h5::write_attr(file, "epoch", c.position.epoch);
    h5::write_attr(file, "epoch_position", c.position.epoch_position);
    h5::write_attr(file, "round", c.position.round);
    h5::write_attr(file, "global_step", c.position.global_step);
    h5::write_attr(file, "samples_seen", c.position.samples_seen);
    h5::write_attr(file, "seed", static_cast<int64_t>(c.seed));
    h5::write_attr(file, "sync_mode", c.sync_mode);
    h5::write_attr(file, "world_size", c.world_size);
    h5::write_attr(file, "config", c.config_json);

    h5::Handle params = create_ordered_group(file, "params");
    for (const auto &[name, tensor] : c.params)
      write_tensor(params, name, tensor);
    h5::Handle buffers = create_ordered_group(file, "buffers");
    for (const auto &[name, tensor] : c.buffers)
      write_tensor(buffers, name, tensor);
    if (!c.frozen.empty()) {
      h5::Handle frozen = create_ordered_group(file, "frozen");
      for (const auto &[name, tensor] : c.frozen)
        write_tensor(frozen, name, tensor);
    }

    h5::Handle optimizer = h5::create_group(file, "optimizer");
    h5::write_attr(optimizer, "kind", c.optimizer.kind);
    h5::write_attr(optimizer, "lr", c.learning_rate);
    h5::write_attr(optimizer, "momentum", c.optimizer.momentum);
    h5::write_attr(optimizer, "beta1", c.optimizer.beta1);
    h5::write_attr(optimizer, "beta2", c.optimizer.beta2);
    h5::write_attr(optimizer, "eps", c.optimizer.eps);
    h5::write_attr(optimizer, "weight_decay", c.optimizer.weight_decay);
    h5::write_attr(optimizer, "step", c.optimizer_steps);
    write_state_groups(optimizer, c.optimizer_state);

    if (!c.trainer_optimizers.empty())
      write_trainer_optimizers(file, c);

    h5::Handle cluster = h5::create_group(file, "cluster");
    h5::write_string_dataset(cluster, "reports", c.cluster_reports);

    h5::Handle metrics = h5::create_group(file, "metrics");
    h5::Handle type = epoch_record_type();
    hsize_t dims[1] = {c.epochs.size()};
    h5::Handle space(CHECK_HDF5(H5Screate_simple(1, dims, nullptr)), H5Sclose);
    h5::Handle table(CHECK_HDF5(H5Dcreate2(metrics, "epochs", type, space, H5P_DEFAULT, H5P_DEFAULT,
                                           H5P_DEFAULT)),
                     H5Dclose);
    if (!c.epochs.empty())
      CHECK_HDF5(H5Dwrite(table, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.epochs.data()));
    h5::write_file_image(file, out.temp_path(), path);
  }
  if (fault_crashes_this_checkpoint_write()) {
    log_warn("--fault-crash-in-checkpoint: dying (SIGKILL) inside the write of {}", path);
    std::fflush(nullptr); // the tests time the other ranks from this line
    std::raise(SIGKILL);
  } // --fault-crash-in-checkpoint: die between the data and the rename
  out.commit();
}

namespace {
// The checkpoint in an open file; `path` names it in messages.
CheckpointContents read_checkpoint_file(hid_t file, const std::string &path) {
  CheckpointContents c;
  try {
    if (!h5::has_attr(file, "format") ||
        h5::read_attr_string(file, "format") != "hetrain-checkpoint")
      throw UserError("not a hetrain checkpoint (attribute format != \"hetrain-checkpoint\")");
    int64_t version = h5::read_attr_int(file, "format_version");
    if (version > kCheckpointFormatVersion)
      throw UserError(fmt::format("checkpoint format version {} is newer than this hetrain "
                                  "reads ({}); upgrade hetrain",
                                  version, kCheckpointFormatVersion));
    c.model.name = h5::read_attr_string(file, "model");
    if (c.model.name.rfind("plugin:", 0) == 0) {
      c.model.plugin = c.model.name.substr(7);
      c.model.name.clear();
    }
    if (h5::has_attr(file, "model_fingerprint"))
      c.model_fingerprint = h5::read_attr_string(file, "model_fingerprint");
    c.model.in_channels = h5::read_attr_int(file, "in_channels");
    c.model.height = h5::read_attr_int(file, "height");
    c.model.width = h5::read_attr_int(file, "width");
    c.model.num_classes = h5::read_attr_int(file, "num_classes");
    c.norm_mean = h5::read_attr_doubles(file, "norm_mean");
    c.norm_std = h5::read_attr_doubles(file, "norm_std");
    c.position.epoch = h5::read_attr_int(file, "epoch");
    c.position.epoch_position = h5::read_attr_int(file, "epoch_position");
    c.position.round = h5::read_attr_int(file, "round");
    c.position.global_step = h5::read_attr_int(file, "global_step");
    c.position.samples_seen = h5::read_attr_int(file, "samples_seen");
    c.seed = static_cast<uint64_t>(h5::read_attr_int(file, "seed"));
    c.sync_mode = h5::read_attr_string(file, "sync_mode");
    c.world_size = h5::read_attr_int(file, "world_size");
    c.config_json = h5::read_attr_string(file, "config");

    c.params = read_group_tensors(file, "params", path);
    c.buffers = read_group_tensors(file, "buffers", path);
    if (h5::exists(file, "frozen"))
      c.frozen = read_group_tensors(file, "frozen", path);

    h5::Handle optimizer = h5::open_group(file, "optimizer", path);
    c.optimizer.kind = h5::read_attr_string(optimizer, "kind");
    c.learning_rate = h5::read_attr_double(optimizer, "lr");
    c.optimizer.momentum = h5::read_attr_double(optimizer, "momentum");
    c.optimizer.beta1 = h5::read_attr_double(optimizer, "beta1");
    c.optimizer.beta2 = h5::read_attr_double(optimizer, "beta2");
    c.optimizer.eps = h5::read_attr_double(optimizer, "eps");
    c.optimizer.weight_decay = h5::read_attr_double(optimizer, "weight_decay");
    c.optimizer_steps = h5::read_attr_int(optimizer, "step");
    for (const std::string &state_name : h5::list_children(optimizer))
      c.optimizer_state.emplace_back(state_name, read_group_tensors(optimizer, state_name, path));

    if (h5::exists(file, "trainer_optimizers"))
      read_trainer_optimizers(file, c, path);

    h5::Handle cluster = h5::open_group(file, "cluster", path);
    c.cluster_reports = h5::read_string_dataset(cluster, "reports");

    h5::Handle table = h5::open_dataset(file, "metrics/epochs", path);
    h5::DatasetShape shape = h5::dataset_shape(table);
    if (shape.type_class != H5T_COMPOUND || shape.dims.size() != 1)
      throw UserError("/metrics/epochs is not a table of epoch records");
    c.epochs.resize(static_cast<size_t>(shape.dims[0]));
    h5::Handle type = epoch_record_type();
    if (!c.epochs.empty())
      CHECK_HDF5(H5Dread(table, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.epochs.data()));
  } catch (const UserError &e) {
    std::string what = e.what();
    if (what.rfind(path, 0) == 0)
      throw;
    throw UserError(fmt::format("{}: {}", path, what));
  } catch (const LibraryError &e) {
    throw UserError(fmt::format("{}: unreadable checkpoint ({})", path, e.what()));
  }
  return c;
}
} // namespace

// The whole read runs first in a forked copy (common/crash_guard.h): HDF5 1.10 crashes on some
// damaged files instead of reporting them.
CheckpointContents read_checkpoint(const std::string &path) {
  const auto read = [&] { return read_checkpoint_file(h5::open_file_readonly(path), path); };
  check_read_survives(path, [&] { (void)read(); });
  return read();
}

CheckpointContents read_checkpoint_image(const std::vector<uint8_t> &image,
                                         const std::string &name) {
  const auto read = [&] { return read_checkpoint_file(h5::open_file_image(image, name), name); };
  check_read_survives(name, [&] { (void)read(); });
  return read();
}

namespace {
std::string shape_string(const torch::Tensor &t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i)
    s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

void copy_named(const NamedTensors &from, const NamedTensors &into, const char *what,
                const std::string &path) {
  std::map<std::string, torch::Tensor> saved(from.begin(), from.end());
  torch::NoGradGuard no_grad;
  for (const auto &[name, target] : into) {
    auto it = saved.find(name);
    if (it == saved.end())
      throw UserError(fmt::format("{}: {} '{}' is missing from the checkpoint", path, what, name));
    if (!it->second.sizes().equals(target.sizes()))
      throw UserError(fmt::format("{}: {} '{}' has shape {} in the checkpoint, the model needs {}",
                                  path, what, name, shape_string(it->second),
                                  shape_string(target)));
    torch::Tensor t = target; // shares storage with the model
    t.copy_(it->second.to(target.dtype()));
  }
  if (saved.size() != into.size())
    throw UserError(fmt::format("{}: the checkpoint has {} {}s, the model has {}", path,
                                saved.size(), what, into.size()));
}
} // namespace

void load_model_state(const CheckpointContents &c, Model &model, const std::string &path) {
  copy_named(c.params, trainable_parameters(model), "parameter", path);
  copy_named(c.buffers, named_buffers(model), "buffer", path);
  copy_named(c.frozen, frozen_parameters(model), "frozen parameter", path);
}

} // namespace hetrain
