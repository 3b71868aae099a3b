// The one place where LibTorch versions differ: every version-specific line of the binding sits behind these checks.
#pragma once

#include <torch/version.h>

#define MMSSL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mmssl {
// "major.minor.patch" of the LibTorch headers this addon was compiled against.
inline constexpr const char* kBuiltTorchVersion = TORCH_VERSION;
}  // namespace mmssl
