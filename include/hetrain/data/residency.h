// --data-residency: whether a dataset is held in memory or read batch by batch (data/dataset.h).
#pragma once

namespace hetrain {

enum class DataResidency { Auto, Memory, Stream };

} // namespace hetrain
