// The process-wide runtime: threads, seeds, devices and the LibTorch version in use.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <regex>

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
  if (n < 1) throw Napi::RangeError::New(a.env(), "setNumThreads: the thread count must be at least 1, got " + std::to_string(n));
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

const Export kExports[] = {
    {"version", version},
    {"setNumThreads", setNumThreads},
    {"getNumThreads", [](Args& a) -> Napi::Value { return a.value(static_cast<double>(at::get_num_threads())); }},
    MMSSL_INPLACE_OP("manualSeed", at::manual_seed(static_cast<uint64_t>(a.int64(0)))),
    {"initialSeed", [](Args& a) -> Napi::Value {
       return a.value(static_cast<double>(at::detail::getDefaultCPUGenerator().current_seed()));
     }},
    {"getRngState", getRngState},
    {"setRngState", setRngState},
    {"cudaIsAvailable", [](Args& a) -> Napi::Value { return a.value(torch::cuda::is_available()); }},
    {"cudaDeviceCount", [](Args& a) -> Napi::Value { return a.value(static_cast<double>(torch::cuda::device_count())); }},
    MMSSL_INPLACE_OP("cudaSynchronize", torch::cuda::synchronize(a.optInt64(0).value_or(-1))),
};

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
