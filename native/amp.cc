// Automatic mixed precision: autocast scopes and the gradient scaler's two ops.
//
// LibTorch has no RAII autocast guard: a scope sets the device type's autocast state (enabled, dtype) and the nesting
// count, and the outermost exit clears the cast cache, as torch.autocast's __exit__ does. The state lives in
// thread-local storage, so each thread (the main one, a worker) has its own; the previous state is kept on a
// thread-local stack and restored on exit.
//
// The scaler's ops are PyTorch's (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_) where LibTorch has
// them for the device: CUDA, and CPU from LibTorch 2.3. Elsewhere (LibTorch 1.13 on CPU) the same algorithm runs as
// device-generic ATen ops; neither reads the device.
#include "common.h"

#include <ATen/autocast_mode.h>

#include <vector>

namespace mmssl {
namespace {

bool autocastEnabled(at::DeviceType type) {
#if MMSSL_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(type);
#else
  return type == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

at::ScalarType autocastDtype(at::DeviceType type) {
#if MMSSL_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(type);
#else
  return type == at::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void setAutocast(at::DeviceType type, bool enabled, at::ScalarType dtype) {
#if MMSSL_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

struct AutocastState {
  at::DeviceType type;
  bool enabled;
  at::ScalarType dtype;
};

thread_local std::vector<AutocastState> autocastStack;

// autocastEnter(device, dtype): enters an autocast scope for the device's type with dtype (float16 or bfloat16).
Napi::Value autocastEnter(Args& a) {
  at::DeviceType type = a.optDevice(0).value_or(at::Device(at::kCPU)).type();
  at::ScalarType dtype = a.dtype(1);
  if (type != at::kCPU && type != at::kCUDA) a.fail(ErrorKind::Argument, "autocast: a cpu or cuda device");
  if (dtype != at::kHalf && dtype != at::kBFloat16)
    a.fail(ErrorKind::Argument, "autocast: the dtype must be float16 or bfloat16");
#if !MMSSL_TORCH_AT_LEAST(2, 3)
  if (type == at::kCPU && dtype == at::kHalf)
    a.fail(ErrorKind::Argument,
           "autocast: float16 on CPU needs LibTorch 2.3 or later (this one's CPU autocast is bfloat16 only): use "
           "bfloat16 ('bf16-mixed')");
#endif
  autocastStack.push_back({type, autocastEnabled(type), autocastDtype(type)});
  setAutocast(type, true, dtype);
  at::autocast::increment_nesting();
  return a.undefined();
}

// autocastExit(): leaves the innermost scope, restoring the state before it; the outermost clears the cast cache.
Napi::Value autocastExit(Args& a) {
  if (autocastStack.empty()) a.fail(ErrorKind::Argument, "autocast: no scope to exit in this thread");
  AutocastState previous = autocastStack.back();
  autocastStack.pop_back();
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  setAutocast(previous.type, previous.enabled, previous.dtype);
  return a.undefined();
}

bool hasAmpKernels(const at::Tensor& t) {
#if MMSSL_TORCH_AT_LEAST(2, 3)
  return t.is_cuda() || t.is_cpu();
#else
  return t.is_cuda();
#endif
}

// ampUnscale(grads, foundInf, invScale): grads *= invScale in place; foundInf (float [1]) set to 1 if any gradient
// holds a NaN or an infinity.
Napi::Value ampUnscale(Args& a) {
  std::vector<at::Tensor> grads = a.tensors(0);
  at::Tensor foundInf = a.tensor(1), invScale = a.tensor(2);
  at::NoGradGuard noGrad;
  if (grads.empty()) return a.undefined();
  if (hasAmpKernels(foundInf)) {
    at::_amp_foreach_non_finite_check_and_unscale_(grads, foundInf, invScale);
    return a.undefined();
  }
  for (at::Tensor& g : grads) {
    foundInf.copy_(at::maximum(foundInf, g.isfinite().logical_not().any().to(foundInf.scalar_type()).reshape({1})));
    g.mul_(invScale.to(g.scalar_type()));
  }
  return a.undefined();
}

// ampUpdateScale(scale, growthTracker, foundInf, growthFactor, backoffFactor, growthInterval): GradScaler.update's
// rule in place: after a step with non-finite gradients the scale backs off and the count of good steps restarts;
// after growthInterval good steps in a row it grows (unless that overflows).
Napi::Value ampUpdateScale(Args& a) {
  at::Tensor scale = a.tensor(0), tracker = a.tensor(1), foundInf = a.tensor(2);
  double growth = a.number(3), backoff = a.number(4);
  int64_t interval = a.int64(5);
  at::NoGradGuard noGrad;
  if (hasAmpKernels(scale)) {
    at::_amp_update_scale_(scale, tracker, foundInf, growth, backoff, interval);
    return a.undefined();
  }
  at::Tensor found = foundInf.gt(0);
  at::Tensor next = tracker.add(1);
  at::Tensor grow = next.ge(interval).logical_and(found.logical_not());
  at::Tensor grown = scale.mul(growth);
  grown = at::where(grown.isfinite(), grown, scale);
  scale.copy_(at::where(found, scale.mul(backoff), at::where(grow, grown, scale)));
  tracker.copy_(at::where(found.logical_or(grow), at::zeros_like(next), next));
  return a.undefined();
}

const Export kExports[] = {
    {"autocastEnter", autocastEnter},
    {"autocastExit", autocastExit},
    {"ampUnscale", ampUnscale},
    {"ampUpdateScale", ampUpdateScale},
};

}  // namespace

void initAmp(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
