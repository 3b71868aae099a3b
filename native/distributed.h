// What native/distributed.cc and the CUDA-only native/cuda/nccl.cc share: the process-group type every collective
// goes through (c10d's ProcessGroup in LibTorch 1.x, its Backend from 2.0 on) and the NCCL group's factory.
#pragma once

#include "version.h"

#include <torch/csrc/distributed/c10d/Store.hpp>
#if MMSSL_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include <chrono>

namespace mmssl {

#if MMSSL_TORCH_AT_LEAST(2, 0)
using CollectiveGroup = c10d::Backend;
#else
using CollectiveGroup = c10d::ProcessGroup;
#endif

#ifdef MMSSL_WITH_CUDA
// NCCL's process group on the CUDA device the caller made current; throws where this build has no NCCL headers.
c10::intrusive_ptr<CollectiveGroup> createNcclGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout);
#endif

}  // namespace mmssl
