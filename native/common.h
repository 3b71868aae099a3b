// The one shared header of the binding layer: handle tables, argument and options readers, errors, the export table
// and its guard.
//
// Every native function is a plain `Napi::Value fn(Args&)` listed in its file's export table. The table installs each
// one behind a single trampoline that catches every C++ exception (JsError, c10::Error, std::exception, ...) and throws
// it in JS as one of mmssl's error classes (registered by lib/native.ts), so no exception can reach N-API and abort
// Node; work off the JS thread goes through PromiseWorker, which settles its promise through the same conversion.
// Tensors and the other native objects (optimizers, process groups) cross into JS as numeric handles into
// per-environment tables (HandleTable); JS holds references, LibTorch's refcounts decide when memory is freed.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "version.h"

namespace mmssl {

// ---- errors -------------------------------------------------------------------------------------------------------

// Which of mmssl's JS error classes a C++ failure becomes (lib/errors.ts; the order of the factories lib/native.ts
// registers).
enum class ErrorKind : uint8_t { Argument = 0, Disposed = 1, Distributed = 2, Torch = 3 };
constexpr size_t kErrorKinds = 4;

// Thrown by the binding layer for what it refuses itself (a bad argument, a disposed handle, a failed collective):
// the guard throws it in JS as the kind's class. The message names the op.
struct JsError : std::runtime_error {
  JsError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind(kind) {}
  ErrorKind kind;
};

// The JS error for the exception in flight (call inside a catch block): mmssl's class for a JsError, TorchError for
// c10::Error and other exceptions (prefixed with the op), the error itself for a Napi::Error.
Napi::Value errorValue(Napi::Env env, const char* op, std::exception_ptr error);

// ---- handle tables ------------------------------------------------------------------------------------------------

// Native values that JS names by number: handle = generation * kHandleSpan + index, the slot's generation bumped on
// every release, so a handle that was released (or never existed) is recognised and refused, never dereferenced. JS
// cannot forge a pointer, and nothing is allocated per value beyond its slot.
constexpr double kHandleSpan = 4194304.0;  // 2^22 slots; exact in a double for 2^31 generations

// `Sign` -1 makes a table's handles negative numbers (-1 - handle), so that two tables' handles never coincide and
// a handle given to the wrong kind of argument is named as such, not taken for a disposed one.
template <typename Entry, int Sign = 1>
class HandleTable {
 public:
  // The value's new handle; throws past 2^22 live values.
  double insert(Entry entry) {
    uint32_t index;
    if (free_.empty()) {
      if (cells_.size() >= static_cast<size_t>(kHandleSpan)) {
        throw std::runtime_error("more than 4194304 live native values in one thread: dispose them, or use tidy()");
      }
      index = static_cast<uint32_t>(cells_.size());
      cells_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Cell& cell = cells_[index];
    cell.entry = std::move(entry);
    cell.used = true;
    ++live_;
    double handle = static_cast<double>(cell.generation) * kHandleSpan + index;
    return Sign > 0 ? handle : -1 - handle;
  }

  // Whether a number is of this table's sign (a handle of it, live or not).
  static bool owns(double handle) { return Sign > 0 ? handle >= 0 : handle < 0; }

  // The live value a handle names, or null.
  Entry* find(double handle) {
    Cell* cell = findCell(handle);
    return cell ? &cell->entry : nullptr;
  }

  // Releases a live value (its entry is reset, so what it owned is freed now); false for a stale handle.
  bool erase(double handle) {
    Cell* cell = findCell(handle);
    if (cell == nullptr) return false;
    clearCell(static_cast<uint32_t>(cell - cells_.data()));
    return true;
  }

  void clear() {
    for (uint32_t i = 0; i < cells_.size(); ++i) {
      if (cells_[i].used) clearCell(i);
    }
  }

  template <typename F>
  void forEach(F f) const {
    for (const Cell& cell : cells_) {
      if (cell.used) f(cell.entry);
    }
  }

  int64_t size() const { return live_; }

 private:
  struct Cell {
    Entry entry{};
    uint32_t generation = 1;
    bool used = false;
  };
  Cell* findCell(double number) {
    double handle = Sign > 0 ? number : -1 - number;
    if (!(handle >= 0) || handle != std::trunc(handle)) return nullptr;
    double generation = std::floor(handle / kHandleSpan);
    double index = handle - generation * kHandleSpan;
    if (index >= static_cast<double>(cells_.size())) return nullptr;
    Cell& cell = cells_[static_cast<size_t>(index)];
    return cell.used && static_cast<double>(cell.generation) == generation ? &cell : nullptr;
  }
  void clearCell(uint32_t index) {
    Cell& cell = cells_[index];
    cell.entry = Entry{};
    cell.used = false;
    ++cell.generation;
    free_.push_back(index);
    --live_;
  }
  std::vector<Cell> cells_;
  std::vector<uint32_t> free_;
  int64_t live_ = 0;
};

struct TensorEntry {
  at::Tensor tensor;
  int64_t externalBytes = 0;  // what this entry reported to V8 as external memory
};

// The native objects that are not tensors, tagged with their kind so that a handle of one kind is never taken for
// another. Each owns its object; releasing the handle (or the environment ending) frees it. Their handles are
// negative, tensors' positive.
enum class ObjectKind : uint8_t { Optimizer = 0, ProcessGroup = 1 };
constexpr std::array<const char*, 2> kObjectKindNames = {"optimizer", "processGroup"};
constexpr std::array<const char*, 2> kObjectKindDescriptions = {"an optimizer", "a process group"};

struct ObjectEntry {
  ObjectKind kind = ObjectKind::Optimizer;
  std::shared_ptr<void> object;
};

// Per-Node-environment state (main thread and each worker thread have their own): the error factories handed over
// by lib/native.ts and the handle tables.
struct EnvState {
  std::array<Napi::FunctionReference, kErrorKinds> errorFactories;
  HandleTable<TensorEntry> tensors;
  HandleTable<ObjectEntry, -1> objects;
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
// The live tensor a JS value names as a handle, or null.
const at::Tensor* findTensor(Napi::Env env, const Napi::Value& handle);
// Drops a tensor handle's reference now; false for a stale handle (a no-op, so disposing twice is harmless).
bool release(Napi::Env env, double handle);
// A handle for a native object of `kind`.
Napi::Value wrapObject(Napi::Env env, ObjectKind kind, std::shared_ptr<void> object);
// Frees every value still referenced from an environment that ends, before static destructors run in no useful
// order.
void releaseAll(EnvState& state);
// Releases a JS reference now when called on the env's JS thread, otherwise on the env's next native call.
void releaseRefSoon(const std::shared_ptr<EnvState>& state, napi_env env, napi_ref ref);

// ---- arguments ----------------------------------------------------------------------------------------------------

// Reads the arguments of one native call. Every reader throws an ArgumentError naming the op and the argument
// position (a DisposedError for a released handle).
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  Napi::Env env() const { return info_.Env(); }
  const char* op() const { return op_; }
  size_t length() const { return info_.Length(); }
  Napi::Value operator[](size_t i) const { return info_[i]; }
  bool isAbsent(size_t i) const { return info_[i].IsUndefined() || info_[i].IsNull(); }

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
  // The native object of `kind` that the handle at i names.
  template <typename T>
  T& object(size_t i, ObjectKind kind) const {
    return *static_cast<T*>(objectEntry(i, kind).object.get());
  }
  std::shared_ptr<void> objectShared(size_t i, ObjectKind kind) const { return objectEntry(i, kind).object; }

  Napi::Value wrap(at::Tensor t) const { return mmssl::wrap(env(), std::move(t)); }
  Napi::Value wrapList(const std::vector<at::Tensor>& ts) const { return mmssl::wrapList(env(), ts); }
  Napi::Value value(double v) const { return Napi::Number::New(env(), v); }
  Napi::Value value(bool v) const { return Napi::Boolean::New(env(), v); }
  Napi::Value value(const std::string& v) const { return Napi::String::New(env(), v); }
  Napi::Value undefined() const { return env().Undefined(); }

  [[noreturn]] void typeError(size_t i, const std::string& expected) const;
  [[noreturn]] void fail(ErrorKind kind, const std::string& message) const;

 private:
  ObjectEntry& objectEntry(size_t i, ObjectKind kind) const;
  const Napi::CallbackInfo& info_;
  const char* op_;
};

// An options object (argument `index`), read with one strictness: a key that is present must have the right type,
// a required key must be present; an absent optional key takes its default. Errors name the op and the key.
class Options {
 public:
  Options(const Args& a, size_t index);
  // An object inside argument `index` (an element of an array of options).
  Options(const Args& a, size_t index, Napi::Object object) : a_(a), index_(index), object_(object) {}
  double number(const char* key) const;
  double number(const char* key, double fallback) const;
  bool flag(const char* key) const;
  std::string text(const char* key) const;
  std::string text(const char* key, const std::string& fallback) const;
  Napi::Value get(const char* key) const { return object_.Get(key); }
  bool has(const char* key) const;
  [[noreturn]] void wrongType(const char* key, const char* expected) const;

 private:
  const Args& a_;
  size_t index_;
  Napi::Object object_;
};

// ---- exports and async work ---------------------------------------------------------------------------------------

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

// Work off the JS thread that settles a promise: `work` runs on a libuv thread and returns the completion that makes
// the JS value on the JS thread. Any exception, in either, rejects the promise with the guard's error.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Completion = std::function<Napi::Value(Napi::Env)>;
  static Napi::Value start(const Args& a, std::function<Completion()> work);

  void Execute() override;
  void OnOK() override;

 private:
  PromiseWorker(Napi::Env env, const char* op, std::function<Completion()> work);
  Napi::Promise::Deferred deferred_;
  const char* op_;
  std::function<Completion()> work_;
  Completion completion_;
  std::exception_ptr error_;
};

// One line per op in the export tables: {"name", [](Args& a) -> Napi::Value { return a.wrap(EXPR); }}.
#define MMSSL_TENSOR_OP(name, expr)                           \
  Export {                                                    \
    name, [](Args& a) -> Napi::Value { return a.wrap(expr); } \
  }
#define MMSSL_INPLACE_OP(name, expr)   \
  Export {                             \
    name, [](Args& a) -> Napi::Value { \
      expr;                            \
      return a.undefined();            \
    }                                  \
  }

// A binary op whose other operand, at argument i, is a tensor or, when argument i + 1 is true, a JS number or boolean:
// `f` is called with PyTorch's Tensor or Scalar overload, so type promotion and kernels are PyTorch's for both.
template <typename F>
auto binary(const Args& a, size_t i, F f) {
  return a.boolean(i + 1) ? f(a.scalar(i)) : f(a.tensor(i));
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
void initImage(Napi::Env env, Napi::Object exports);
void initAmp(Napi::Env env, Napi::Object exports);
void initRecords(Napi::Env env, Napi::Object exports);
void initAugment(Napi::Env env, Napi::Object exports);
#ifdef MMSSL_WITH_CUDA
void initCuda(Napi::Env env, Napi::Object exports);
void initCudaStreams(Napi::Env env, Napi::Object exports);
#endif

}  // namespace mmssl
