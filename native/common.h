// The one shared header of the binding layer: tensor handles, argument readers, the export table and its guard.
//
// Every native function is a plain `Napi::Value fn(Args&)` listed in its file's export table. The table installs each
// one behind a single trampoline that catches every C++ exception (Napi::Error, c10::Error, std::exception, ...), so
// no exception can reach N-API and abort Node. A tensor crosses into JS as a numeric handle into a per-environment
// table (see Slot); JS holds references, LibTorch's refcount decides when memory is freed.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "version.h"

namespace mmssl {

// Tensors cross into JS as numbers: an index into the environment's tensor table plus the slot's generation, so a
// handle that was disposed (or never existed) can be recognised and refused, never dereferenced. JS code cannot forge a
// pointer, and nothing is allocated per tensor beyond its table slot.
struct Slot {
  at::Tensor tensor;         // undefined when the slot is free
  uint32_t generation = 0;   // bumped on every release, invalidating old handles
  int64_t externalBytes = 0; // what this slot reported to V8 as external memory
};

// Per-Node-environment state (main thread and each worker thread have their own): the error constructors handed over
// by lib/native.ts and the tensor table.
struct EnvState {
  Napi::FunctionReference torchError;
  Napi::FunctionReference disposedError;
  std::vector<Slot> slots;
  std::vector<uint32_t> freeSlots;
  int64_t liveCount = 0;
  bool alive = true;
  std::thread::id jsThread = std::this_thread::get_id();
  // References to JS buffers whose zero-copy tensors died off the JS thread; released on the next call.
  std::mutex pendingMutex;
  std::vector<napi_ref> pendingRefs;
  std::atomic<bool> hasPendingRefs{false};
};

EnvState& envState(Napi::Env env);
std::shared_ptr<EnvState> envStateShared(Napi::Env env);

// Makes a JS handle for `tensor` (null for an undefined tensor, e.g. a missing grad).
Napi::Value wrap(Napi::Env env, at::Tensor tensor);
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
// The slot a handle names, or null when the handle is stale, disposed or out of range.
Slot* lookup(EnvState& state, double handle);
// Drops a handle's reference now; false for a stale handle (a no-op, so disposing twice is harmless).
bool release(Napi::Env env, double handle);
// Frees every tensor still referenced from an environment that ends, before static destructors run in no useful
// order.
void releaseAll(EnvState& state);
// Releases a JS reference now when called on the env's JS thread, otherwise on the env's next native call.
void releaseRefSoon(const std::shared_ptr<EnvState>& state, napi_env env, napi_ref ref);

// Reads the arguments of one native call. Every reader throws a TypeError naming the op and the argument position.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  Napi::Env env() const { return info_.Env(); }
  const char* op() const { return op_; }
  size_t length() const { return info_.Length(); }
  Napi::Value operator[](size_t i) const { return info_[i]; }
  bool isAbsent(size_t i) const { return info_[i].IsUndefined() || info_[i].IsNull(); }
  bool isNumber(size_t i) const { return info_[i].IsNumber(); }

  double handle(size_t i) const;
  at::Tensor tensor(size_t i) const;
  c10::optional<at::Tensor> optTensor(size_t i) const;
  // A JS number/boolean as a tensor, wrapped as PyTorch wraps Python scalars (so type promotion matches).
  at::Tensor wrappedScalar(size_t i) const;
  std::vector<at::Tensor> tensors(size_t i) const;
  at::Scalar scalar(size_t i) const;
  double number(size_t i) const;
  int64_t int64(size_t i) const;
  c10::optional<int64_t> optInt64(size_t i) const;
  c10::optional<double> optNumber(size_t i) const;
  bool boolean(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;  // an array of integers, or one integer
  c10::optional<std::vector<int64_t>> optInts(size_t i) const;
  std::string string(size_t i) const;
  at::ScalarType dtype(size_t i) const;
  c10::optional<at::ScalarType> optDtype(size_t i) const;
  at::Device device(size_t i) const;
  c10::optional<at::Device> optDevice(size_t i) const;
  // dtype at i, device at i + 1, both optional.
  at::TensorOptions options(size_t i) const;

  Napi::Value wrap(at::Tensor t) const { return mmssl::wrap(env(), std::move(t)); }
  Napi::Value wrapList(const std::vector<at::Tensor>& ts) const { return mmssl::wrapList(env(), ts); }
  Napi::Value value(double v) const { return Napi::Number::New(env(), v); }
  Napi::Value value(bool v) const { return Napi::Boolean::New(env(), v); }
  Napi::Value undefined() const { return env().Undefined(); }

  [[noreturn]] void typeError(size_t i, const std::string& expected) const;

 private:
  const Napi::CallbackInfo& info_;
  const char* op_;
};

using NativeFn = Napi::Value (*)(Args&);
struct Export {
  const char* name;
  NativeFn fn;
};

void defineExports(Napi::Env env, Napi::Object exports, const Export* table, size_t count);
template <size_t N>
void defineExports(Napi::Env env, Napi::Object exports, const Export (&table)[N]) {
  defineExports(env, exports, table, N);
}

// One line per op in the export tables: {"name", [](Args& a) -> Napi::Value { return a.wrap(EXPR); }}.
#define MMSSL_TENSOR_OP(name, expr) \
  Export { name, [](Args& a) -> Napi::Value { return a.wrap(expr); } }
#define MMSSL_INPLACE_OP(name, expr) \
  Export {                                  \
    name, [](Args& a) -> Napi::Value {      \
      expr;                                 \
      return a.undefined();                 \
    }                                       \
  }

std::string shapeString(at::IntArrayRef shape);

// Each concern's Init, called once per environment by addon.cc.
void initTensor(Napi::Env env, Napi::Object exports);
void initOps(Napi::Env env, Napi::Object exports);
void initFunctional(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initRuntime(Napi::Env env, Napi::Object exports);
void initOptim(Napi::Env env, Napi::Object exports);
void initLoss(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);
#ifdef MMSSL_WITH_CUDA
void initCuda(Napi::Env env, Napi::Object exports);
#endif

}  // namespace mmssl
