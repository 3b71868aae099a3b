// The process-wide runtime: threads, seeds, devices and the LibTorch version in use.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <regex>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace mmssl {
namespace {

// The version of the LibTorch library actually loaded, read from its own build settings ("TORCH_VERSION=x.y.z").
std::string runtimeTorchVersion() {
  static const std::string version = [] {
    std::smatch match;
    std::string config = at::show_config();
    return std::regex_search(config, match, std::regex("TORCH_VERSION=([0-9]+\\.[0-9]+\\.[0-9]+)")) ? match[1].str()
                                                                                                    : std::string();
  }();
  return version;
}

Napi::Value version(Args& a) {
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("built", kBuiltTorchVersion);
  out.Set("runtime", runtimeTorchVersion());
#ifdef MMSSL_WITH_CUDA
  out.Set("cuda", true);
#else
  out.Set("cuda", false);
#endif
  out.Set("parallelInfo", at::get_parallel_info());
  return out;
}

Napi::Value setNumThreads(Args& a) {
  int64_t n = a.int64(0);
  if (n < 1) a.fail(ErrorKind::Argument, "the thread count must be at least 1, got " + std::to_string(n));
  at::set_num_threads(static_cast<int>(n));
  return a.undefined();
}

// The default generator of a device (CPU when absent); its state is a uint8 tensor, as torch.get_rng_state() returns.
at::Generator generator(const Args& a, size_t i) {
  return at::globalContext().defaultGenerator(a.optDevice(i).value_or(at::Device(at::kCPU)));
}

Napi::Value setRngState(Args& a) {
  at::Generator gen = generator(a, 1);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(a.tensor(0));
  return a.undefined();
}

Napi::Value getRngState(Args& a) {
  at::Generator gen = generator(a, 0);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return a.wrap(gen.get_state());
}

// glibc serves allocations above a (dynamic, at most 32 MiB) threshold with mmap and unmaps them when freed, so a
// training step's large activations and gradients come back as fresh zero-filled pages every step: a fifth to a
// quarter of a CPU pre-training step went to page faults (bench:step). Keeping them in the heap, as PyTorch's
// caching allocator does on CUDA, reuses the memory; the resident set stays at its peak instead of breathing.
// Skipped when the user tunes malloc themselves (MALLOC_*_ or GLIBC_TUNABLES) or sets MMSSL_MALLOC_TUNING=0.
bool tuneHostAllocator() {
#ifdef __GLIBC__
  static const bool tuned = [] {
    const char* choice = std::getenv("MMSSL_MALLOC_TUNING");
    if (choice != nullptr && std::string(choice) == "0") return false;
    for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"}) {
      if (std::getenv(name) != nullptr) return false;
    }
    return mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
  }();
  return tuned;
#else
  return false;
#endif
}

// torch.get_float32_matmul_precision(): whether float32 matrix products may use TF32 ('high') or bfloat16 ('medium').
Napi::Value getFloat32MatmulPrecision(Args& a) {
  switch (at::globalContext().float32MatmulPrecision()) {
    case at::Float32MatmulPrecision::HIGHEST:
      return a.value(std::string("highest"));
    case at::Float32MatmulPrecision::HIGH:
      return a.value(std::string("high"));
    default:
      return a.value(std::string("medium"));
  }
}

const Export kExports[] = {
    {"hostAllocatorTuned", [](Args& a) -> Napi::Value { return a.value(tuneHostAllocator()); }},
    {"version", version},
    {"setNumThreads", setNumThreads},
    {"getNumThreads", [](Args& a) -> Napi::Value { return a.value(static_cast<double>(at::get_num_threads())); }},
    MMSSL_INPLACE_OP("manualSeed", at::manual_seed(static_cast<uint64_t>(a.int64(0)))),
    {"initialSeed",
     [](Args& a) -> Napi::Value {
       return a.value(static_cast<double>(at::detail::getDefaultCPUGenerator().current_seed()));
     }},
    {"getRngState", getRngState},
    {"setRngState", setRngState},
    {"cudaIsAvailable", [](Args& a) -> Napi::Value { return a.value(torch::cuda::is_available()); }},
    {"cudaDeviceCount",
     [](Args& a) -> Napi::Value { return a.value(static_cast<double>(torch::cuda::device_count())); }},
    MMSSL_INPLACE_OP("cudaSynchronize", torch::cuda::synchronize(a.optInt64(0).value_or(-1))),
    {"getCudnnBenchmark", [](Args& a) -> Napi::Value { return a.value(at::globalContext().benchmarkCuDNN()); }},
    MMSSL_INPLACE_OP("setCudnnBenchmark", at::globalContext().setBenchmarkCuDNN(a.boolean(0))),
    {"getFloat32MatmulPrecision", getFloat32MatmulPrecision},
    MMSSL_INPLACE_OP("setFloat32MatmulPrecision", at::globalContext().setFloat32MatmulPrecision(a.string(0))),
};

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) {
  tuneHostAllocator();
  defineExports(env, exports, kExports);
}

}  // namespace mmssl
