// splitmix64 (Steele, Lea, Flood 2014): the one small mixer behind every reproducible random
// choice in hetrain (epoch order, augmentation draws, micro-batch seeds, synthetic labels). Own
// code rather than std:: engines and distributions, whose output differs between standard
// libraries: these values must be the same on every rank and every machine.
#pragma once

#include <cstdint>

namespace hetrain {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// The finaliser: a bijection that spreads every input bit over the output.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The next value of the stream whose state is `state`.
inline uint64_t splitmix64(uint64_t &state) { return mix64(state += kGoldenGamma); }

} // namespace hetrain
