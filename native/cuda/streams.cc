// CUDA-only: host-to-device copies on a side stream, so the next batch travels while the current step computes.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../common.h"

namespace mmssl {
namespace {

// Copies each (pinned) host tensor to `device` on a stream from LibTorch's pool, then makes the device's current stream
// wait for those copies: work queued afterwards sees the data, work queued before (the step in flight) runs alongside
// the copies. record_stream tells the caching allocator the copies are used on the current stream, so their memory is
// not handed out again while that stream may still read it.
Napi::Value cudaCopyOnSideStream(Args& a) {
  std::vector<at::Tensor> sources = a.tensors(0);
  at::Device device = a.device(1);
  if (!device.is_cuda()) a.fail(ErrorKind::Argument, "cudaCopyOnSideStream: a cuda device");
  c10::cuda::CUDAGuard deviceGuard(device);
  c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device.index());
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  std::vector<at::Tensor> copies;
  copies.reserve(sources.size());
  at::cuda::CUDAEvent copied;
  {
    c10::cuda::CUDAStreamGuard streamGuard(side);
    for (const auto& t : sources) copies.push_back(t.to(device, /*non_blocking=*/true));
    copied.record(side);
  }
  copied.block(current);
  for (auto& t : copies) t.record_stream(current.unwrap());
  return a.wrapList(copies);
}

const Export kExports[] = {
    {"cudaCopyOnSideStream", cudaCopyOnSideStream},
};

}  // namespace

void initCudaStreams(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
