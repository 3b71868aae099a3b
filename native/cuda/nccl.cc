// CUDA-only: c10d's NCCL process group, for data parallelism on GPUs. Compiled only against a LibTorch with CUDA;
// NCCL's own header comes from libnccl-dev (or the CUDA toolkit's NCCL), and without it the group says so.
#if __has_include(<nccl.h>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL  // ProcessGroupNCCL.hpp declares nothing without it
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "../distributed.h"

#include <stdexcept>

namespace mmssl {

c10::intrusive_ptr<CollectiveGroup> createNcclGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
#if __has_include(<nccl.h>)
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  throw std::runtime_error(
      "this build of mmssl has no NCCL (nccl.h was missing): install libnccl-dev, then npm run build:native");
#endif
}

}  // namespace mmssl
