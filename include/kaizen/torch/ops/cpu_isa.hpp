// kaizen/torch/ops/cpu_isa.hpp - which instruction set the fused CPU row loops of kaizen::ops use.
//
// kaizen is header-only and its users compile it for the baseline ISA of their toolchain (x86-64:
// SSE2), so the hot row loops come twice: the portable loops of cpu_rows.hpp, and AVX2 + FMA + F16C
// versions (cpu_avx2.hpp) compiled with a function-level target attribute and chosen at run time when
// the CPU has those extensions (every x86-64 CPU since Intel Haswell / AMD Excavator). Other
// architectures and compilers without GNU target attributes get the portable loops only.
// ScopedCpuIsa lets tests (and users chasing a numerical difference) force the portable path.
#pragma once

#include <algorithm>
#include <atomic>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define KAIZEN_CPU_X86_AVX2 1
#include <cpuid.h>
#else
#define KAIZEN_CPU_X86_AVX2 0
#endif

namespace kaizen::ops {

/// Instruction sets of the fused CPU loops, in increasing order of capability.
enum class CpuIsa : int {
  portable = 0,  ///< plain C++ loops (cpu_rows.hpp), what the compiler's baseline flags give
  avx2 = 1,      ///< AVX2 + FMA + F16C intrinsics (cpu_avx2.hpp); x86-64 with GCC or Clang only
};

namespace detail {

/// The best ISA this CPU and build support (detected once).
[[nodiscard]] inline CpuIsa detected_cpu_isa() noexcept {
  static const CpuIsa isa = [] {
#if KAIZEN_CPU_X86_AVX2
    __builtin_cpu_init();
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
    // __builtin_cpu_supports("avx2") also checks that the OS saves the YMM registers (XGETBV).
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) return CpuIsa::avx2;
#endif
    return CpuIsa::portable;
  }();
  return isa;
}

/// Cap on the ISA set by ScopedCpuIsa (process-wide).
inline std::atomic<int>& cpu_isa_cap() noexcept {
  static std::atomic<int> cap{static_cast<int>(CpuIsa::avx2)};
  return cap;
}

}  // namespace detail

/// The ISA the fused CPU loops use now: the detected one, capped by a live ScopedCpuIsa.
[[nodiscard]] inline CpuIsa active_cpu_isa() noexcept {
  return static_cast<CpuIsa>(
      std::min(static_cast<int>(detail::detected_cpu_isa()), detail::cpu_isa_cap().load(std::memory_order_relaxed)));
}

/// Caps the ISA of the fused CPU loops at `isa` until destruction (process-wide, not thread-local:
/// meant for tests and benchmarks). Asking for more than the CPU has gives what it has; active()
/// says which ISA is in effect.
class ScopedCpuIsa {
 public:
  explicit ScopedCpuIsa(CpuIsa isa) noexcept
      : previous_(detail::cpu_isa_cap().exchange(static_cast<int>(isa), std::memory_order_relaxed)) {}
  ~ScopedCpuIsa() { detail::cpu_isa_cap().store(previous_, std::memory_order_relaxed); }
  ScopedCpuIsa(const ScopedCpuIsa&) = delete;
  ScopedCpuIsa& operator=(const ScopedCpuIsa&) = delete;

  [[nodiscard]] CpuIsa active() const noexcept { return active_cpu_isa(); }

 private:
  int previous_;
};

}  // namespace kaizen::ops
