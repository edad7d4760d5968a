// The options of `hetrain train` that take one of a fixed set of names, as enums, with one table
// per enum mapping names <-> values. The command line checks a value against the table, the
// config JSON stored in every checkpoint writes and reads the same names, and error messages list
// them, so a name is spelt in one place. The names are part of the checkpoint format: never rename
// one (old checkpoints must still load); add new ones at the end.
//
// Header-only and free of torch, so that any stage (train/amp.h, run/) can take the enums.
#pragma once

#include "hetrain/common/error.h"
#include "hetrain/data/residency.h"

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace hetrain {

// --sync: gradient (the exact gradient of the global batch) | params (local SGD, averaging) |
// diloco (local steps, then an outer optimizer step on the averaged pseudo-gradient) | auto
// (gradient or diloco, chosen by rank 0 from the measured links; replaced by the choice before
// anything that depends on the mode is built).
enum class SyncMode { kGradient, kParams, kDiLoCo, kAuto };
// --outer-optimizer of --sync diloco: Nesterov momentum (DiLoCo), plain SGD, or plain averaging.
enum class OuterOptimizer { kNesterov, kSgd, kAverage };
// --on-trainer-loss: abort (end the job) | continue (drop the trainer, re-plan, train on).
enum class TrainerLoss { kAbort, kContinue };
// --wire-dtype: the dtype of the trainers' uploads.
enum class WireDType { kFp32, kBf16, kFp16, kInt8 };
// --amp: autocast of the forward passes.
enum class AmpMode { kOff, kBf16, kFp16 };
// --device, --aggregator-device (and `hetrain bench --device`).
enum class DeviceChoice { kAuto, kCuda, kCpu };
// --loss: the training objective (train/loss.h).
enum class LossKind { kCrossEntropy, kMse, kBceWithLogits, kModel };
// --host-reduce: trainers of one host sum their gradients locally, one of them uploads (DESIGN §6).
enum class HostReduce { kAuto, kOn, kOff };

template <class E> struct NamedValue {
  E value;
  const char *name;
};

// The table of an enum: specialised once per enum, as `static constexpr NamedValue<E> table[]`.
template <class E> struct EnumNames;

template <> struct EnumNames<SyncMode> {
  static constexpr NamedValue<SyncMode> table[] = {{SyncMode::kGradient, "gradient"},
                                                   {SyncMode::kParams, "params"},
                                                   {SyncMode::kDiLoCo, "diloco"},
                                                   {SyncMode::kAuto, "auto"}};
};
template <> struct EnumNames<OuterOptimizer> {
  static constexpr NamedValue<OuterOptimizer> table[] = {{OuterOptimizer::kNesterov, "nesterov"},
                                                         {OuterOptimizer::kSgd, "sgd"},
                                                         {OuterOptimizer::kAverage, "average"}};
};
template <> struct EnumNames<TrainerLoss> {
  static constexpr NamedValue<TrainerLoss> table[] = {{TrainerLoss::kAbort, "abort"},
                                                      {TrainerLoss::kContinue, "continue"}};
};
template <> struct EnumNames<WireDType> {
  static constexpr NamedValue<WireDType> table[] = {{WireDType::kFp32, "fp32"},
                                                    {WireDType::kBf16, "bf16"},
                                                    {WireDType::kFp16, "fp16"},
                                                    {WireDType::kInt8, "int8"}};
};
template <> struct EnumNames<AmpMode> {
  static constexpr NamedValue<AmpMode> table[] = {
      {AmpMode::kOff, "off"}, {AmpMode::kBf16, "bf16"}, {AmpMode::kFp16, "fp16"}};
};
template <> struct EnumNames<DeviceChoice> {
  static constexpr NamedValue<DeviceChoice> table[] = {
      {DeviceChoice::kAuto, "auto"}, {DeviceChoice::kCuda, "cuda"}, {DeviceChoice::kCpu, "cpu"}};
};
template <> struct EnumNames<LossKind> {
  static constexpr NamedValue<LossKind> table[] = {{LossKind::kCrossEntropy, "cross-entropy"},
                                                   {LossKind::kMse, "mse"},
                                                   {LossKind::kBceWithLogits, "bce-with-logits"},
                                                   {LossKind::kModel, "model"}};
};
template <> struct EnumNames<HostReduce> {
  static constexpr NamedValue<HostReduce> table[] = {
      {HostReduce::kAuto, "auto"}, {HostReduce::kOn, "on"}, {HostReduce::kOff, "off"}};
};
template <> struct EnumNames<DataResidency> {
  static constexpr NamedValue<DataResidency> table[] = {{DataResidency::Auto, "auto"},
                                                        {DataResidency::Memory, "memory"},
                                                        {DataResidency::Stream, "stream"}};
};

// True for the enums above (the ones with a table).
template <class T, class = void> struct is_named_enum : std::false_type {};
template <class T>
struct is_named_enum<T, std::void_t<decltype(EnumNames<T>::table)>> : std::true_type {};
template <class T> inline constexpr bool is_named_enum_v = is_named_enum<T>::value;

// The name of a value ("params").
template <class E> const char *name_of(E value) {
  for (const NamedValue<E> &n : EnumNames<E>::table)
    if (n.value == value)
      return n.name;
  return "?"; // unreachable for a value of the enum
}

// The value of a name; nothing for a name not in the table (names are case-sensitive).
template <class E> std::optional<E> value_named(std::string_view name) {
  for (const NamedValue<E> &n : EnumNames<E>::table)
    if (name == n.name)
      return n.value;
  return std::nullopt;
}

// "gradient, params": the names, in table order, for messages.
template <class E> std::string names_of() {
  std::string list;
  for (const NamedValue<E> &n : EnumNames<E>::table)
    list += (list.empty() ? "" : ", ") + std::string(n.name);
  return list;
}

// "'x' is not one of gradient, params": the command line puts "--sync: " before it.
template <class E> std::string not_a_name_message(std::string_view name) {
  return "'" + std::string(name) + "' is not one of " + names_of<E>();
}

// The value of a name, or UserError "--sync: 'x' is not one of gradient, params".
template <class E> E parse_named(std::string_view flag, std::string_view name) {
  if (std::optional<E> value = value_named<E>(name))
    return *value;
  throw UserError("--" + std::string(flag) + ": " + not_a_name_message<E>(name));
}

} // namespace hetrain
