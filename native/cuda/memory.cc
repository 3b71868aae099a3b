// CUDA-only: the caching allocator's statistics. Compiled only against a LibTorch with CUDA (MMSSL_WITH_CUDA).
#include "../common.h"
#include "../version.h"

namespace mmssl {
namespace {

Napi::Value cudaMemoryStats(Args& a) {
  int device = static_cast<int>(a.optInt64(0).value_or(0));
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  constexpr size_t kAll = static_cast<size_t>(CudaStatType::AGGREGATE);
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("allocatedBytes", static_cast<double>(stats.allocated_bytes[kAll].current));
  out.Set("peakAllocatedBytes", static_cast<double>(stats.allocated_bytes[kAll].peak));
  out.Set("reservedBytes", static_cast<double>(stats.reserved_bytes[kAll].current));
  out.Set("peakReservedBytes", static_cast<double>(stats.reserved_bytes[kAll].peak));
  return out;
}

const Export kExports[] = {
    {"cudaMemoryStats", cudaMemoryStats},
    MMSSL_INPLACE_OP("cudaEmptyCache", c10::cuda::CUDACachingAllocator::emptyCache()),
    MMSSL_INPLACE_OP("cudaResetPeakMemoryStats",
                     c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<int>(a.optInt64(0).value_or(0)))),
};

}  // namespace

void initCuda(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
