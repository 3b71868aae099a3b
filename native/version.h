// The one place where LibTorch versions differ: every version-specific line of the binding sits behind these checks.
#pragma once

#include <torch/version.h>

#define MMSSL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mmssl {
// "major.minor.patch" of the LibTorch headers this addon was compiled against.
inline constexpr const char* kBuiltTorchVersion = TORCH_VERSION;
}  // namespace mmssl

#ifdef MMSSL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>

namespace mmssl {
#if MMSSL_TORCH_AT_LEAST(2, 5)
// 2.5 moved the caching allocator's statistics types to c10/core/CachingDeviceAllocator.h.
using CudaStatType = c10::CachingDeviceAllocator::StatType;
#else
using CudaStatType = c10::cuda::CUDACachingAllocator::StatType;
#endif
}  // namespace mmssl
#endif
