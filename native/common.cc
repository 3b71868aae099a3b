#include "common.h"

#include <cmath>
#include <sstream>

namespace mmssl {
namespace {

// handle = generation * kSlotSpan + index: exact in a double for 2^31 generations of 2^22 slots.
constexpr double kSlotSpan = 4194304.0;  // 2^22

void releasePendingRefs(Napi::Env env, EnvState& state) {
  std::vector<napi_ref> refs;
  {
    std::lock_guard<std::mutex> lock(state.pendingMutex);
    refs.swap(state.pendingRefs);
    state.hasPendingRefs = false;
  }
  for (napi_ref ref : refs) napi_delete_reference(env, ref);
}

// Reports bytes to V8 only for a tensor that is the sole owner of its storage, so views never count twice.
int64_t ownedBytes(const at::Tensor& t) {
  if (!t.has_storage() || t.device().type() != at::kCPU) return 0;
  const auto& storage = t.storage();
  return storage.use_count() == 1 ? static_cast<int64_t>(storage.nbytes()) : 0;
}

void clearSlot(EnvState& state, Slot& slot, uint32_t index) {
  slot.tensor.reset();
  slot.externalBytes = 0;
  ++slot.generation;
  state.freeSlots.push_back(index);
  --state.liveCount;
}

void throwTorchError(napi_env rawEnv, const char* op, const std::string& message) {
  Napi::Env env(rawEnv);
  EnvState& state = envState(env);
  std::string text = std::string(op) + ": " + message;
  if (state.torchError.IsEmpty()) {
    Napi::Error::New(env, text).ThrowAsJavaScriptException();
    return;
  }
  Napi::Value err = state.torchError.New({Napi::String::New(env, text), Napi::String::New(env, op)});
  Napi::Error(env, err).ThrowAsJavaScriptException();
}

napi_value trampoline(napi_env env, napi_callback_info cbinfo) {
  const char* op = "native call";
  try {
    Napi::CallbackInfo info(env, cbinfo);
    const Export* entry = static_cast<const Export*>(info.Data());
    op = entry->name;
    Args args(info, op);
    return entry->fn(args);
  } catch (const Napi::Error& e) {
    // Throwing can itself fail (and throw) while a worker thread is being terminated: never let that escape.
    try { e.ThrowAsJavaScriptException(); } catch (...) {}
  } catch (const c10::Error& e) {
    try { throwTorchError(env, op, e.what_without_backtrace()); } catch (...) {}
  } catch (const std::exception& e) {
    try { throwTorchError(env, op, e.what()); } catch (...) {}
  } catch (...) {
    try { throwTorchError(env, op, "unknown native exception"); } catch (...) {}
  }
  return nullptr;
}

}  // namespace

EnvState& envState(Napi::Env env) { return **env.GetInstanceData<std::shared_ptr<EnvState>>(); }

std::shared_ptr<EnvState> envStateShared(Napi::Env env) {
  return *env.GetInstanceData<std::shared_ptr<EnvState>>();
}

Slot* lookup(EnvState& state, double handle) {
  if (!(handle >= 0) || handle != std::trunc(handle)) return nullptr;
  double generation = std::floor(handle / kSlotSpan);
  double index = handle - generation * kSlotSpan;
  if (index >= static_cast<double>(state.slots.size())) return nullptr;
  Slot& slot = state.slots[static_cast<size_t>(index)];
  if (static_cast<double>(slot.generation) != generation || !slot.tensor.defined()) return nullptr;
  return &slot;
}

bool release(Napi::Env env, double handle) {
  EnvState& state = envState(env);
  Slot* slot = lookup(state, handle);
  if (slot == nullptr) return false;
  if (slot->externalBytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -slot->externalBytes);
  clearSlot(state, *slot, static_cast<uint32_t>(slot - state.slots.data()));
  return true;
}

void releaseAll(EnvState& state) {
  state.alive = false;
  for (size_t i = 0; i < state.slots.size(); ++i) {
    if (state.slots[i].tensor.defined()) clearSlot(state, state.slots[i], static_cast<uint32_t>(i));
  }
  state.torchError.Reset();
  state.disposedError.Reset();
}

void releaseRefSoon(const std::shared_ptr<EnvState>& state, napi_env env, napi_ref ref) {
  if (!state->alive) return;  // the environment is gone, and its references with it
  if (std::this_thread::get_id() == state->jsThread) {
    napi_delete_reference(env, ref);
    return;
  }
  std::lock_guard<std::mutex> lock(state->pendingMutex);
  state->pendingRefs.push_back(ref);
  state->hasPendingRefs = true;
}

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  EnvState& state = envState(env);
  if (state.hasPendingRefs.load(std::memory_order_relaxed)) releasePendingRefs(env, state);
  uint32_t index;
  if (state.freeSlots.empty()) {
    if (state.slots.size() >= static_cast<size_t>(kSlotSpan)) {
      throw std::runtime_error("more than 4194304 live tensors in one thread: dispose tensors, or use tidy()");
    }
    index = static_cast<uint32_t>(state.slots.size());
    state.slots.emplace_back();
    state.slots.back().generation = 1;
  } else {
    index = state.freeSlots.back();
    state.freeSlots.pop_back();
  }
  Slot& slot = state.slots[index];
  slot.externalBytes = ownedBytes(tensor);
  slot.tensor = std::move(tensor);
  ++state.liveCount;
  if (slot.externalBytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, slot.externalBytes);
  return Napi::Number::New(env, static_cast<double>(slot.generation) * kSlotSpan + index);
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.Set(static_cast<uint32_t>(i), wrap(env, tensors[i]));
  return out;
}

std::string shapeString(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

void Args::typeError(size_t i, const std::string& expected) const {
  Napi::Value v = info_[i];
  std::string got = v.IsUndefined() ? "undefined"
                    : v.IsNull()    ? "null"
                    : v.IsNumber()  ? "number " + v.ToString().Utf8Value()
                    : v.IsString()  ? "string"
                    : v.IsBoolean() ? "boolean"
                    : v.IsArray()   ? "array"
                                     : "object";
  throw Napi::TypeError::New(env(), std::string(op_) + ": argument " + std::to_string(i) + " must be " + expected +
                                        ", got " + got);
}

double Args::handle(size_t i) const {
  if (!info_[i].IsNumber()) typeError(i, "a tensor");
  return info_[i].As<Napi::Number>().DoubleValue();
}

at::Tensor Args::tensor(size_t i) const {
  Slot* slot = lookup(envState(env()), handle(i));
  if (slot == nullptr) {
    EnvState& state = envState(env());
    std::string text = std::string(op_) + ": argument " + std::to_string(i) + " is a disposed tensor";
    if (state.disposedError.IsEmpty()) throw Napi::Error::New(env(), text);
    throw Napi::Error(env(), state.disposedError.New({Napi::String::New(env(), text)}));
  }
  return slot->tensor;
}

c10::optional<at::Tensor> Args::optTensor(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return tensor(i);
}

at::Tensor Args::wrappedScalar(size_t i) const {
  at::Tensor t = at::scalar_to_tensor(scalar(i));
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return t;
}

std::vector<at::Tensor> Args::tensors(size_t i) const {
  if (!info_[i].IsArray()) typeError(i, "an array of tensors");
  Napi::Array array = info_[i].As<Napi::Array>();
  EnvState& state = envState(env());
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); ++k) {
    Napi::Value v = array.Get(k);
    Slot* slot = v.IsNumber() ? lookup(state, v.As<Napi::Number>().DoubleValue()) : nullptr;
    if (slot == nullptr) typeError(i, "an array of live tensors (element " + std::to_string(k) + " is not one)");
    out.push_back(slot->tensor);
  }
  return out;
}

at::Scalar Args::scalar(size_t i) const {
  Napi::Value v = info_[i];
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = number(i);
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) <= 9007199254740992.0) {
    return at::Scalar(static_cast<int64_t>(d));
  }
  return at::Scalar(d);
}

double Args::number(size_t i) const {
  if (!info_[i].IsNumber()) typeError(i, "a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

int64_t Args::int64(size_t i) const {
  if (!info_[i].IsNumber()) typeError(i, "an integer");
  double d = info_[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) > 9007199254740992.0) typeError(i, "an integer");
  return static_cast<int64_t>(d);
}

c10::optional<int64_t> Args::optInt64(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return int64(i);
}

c10::optional<double> Args::optNumber(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return number(i);
}

bool Args::boolean(size_t i) const {
  if (!info_[i].IsBoolean()) typeError(i, "a boolean");
  return info_[i].As<Napi::Boolean>().Value();
}

std::vector<int64_t> Args::ints(size_t i) const {
  if (info_[i].IsNumber()) return {int64(i)};
  if (!info_[i].IsArray()) typeError(i, "an array of integers");
  Napi::Array array = info_[i].As<Napi::Array>();
  std::vector<int64_t> out(array.Length());
  for (uint32_t k = 0; k < array.Length(); ++k) {
    Napi::Value v = array.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) > 9007199254740992.0) {
      typeError(i, "an array of integers (element " + std::to_string(k) + " is not one)");
    }
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

c10::optional<std::vector<int64_t>> Args::optInts(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return ints(i);
}

std::string Args::string(size_t i) const {
  if (!info_[i].IsString()) typeError(i, "a string");
  return info_[i].As<Napi::String>().Utf8Value();
}

at::ScalarType Args::dtype(size_t i) const {
  int64_t code = int64(i);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) typeError(i, "a dtype code");
  return static_cast<at::ScalarType>(code);
}

c10::optional<at::ScalarType> Args::optDtype(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return dtype(i);
}

at::Device Args::device(size_t i) const {
  std::string name = string(i);
  try {
    return at::Device(name);
  } catch (const c10::Error&) {
    throw Napi::TypeError::New(env(), std::string(op_) + ": unknown device '" + name +
                                          "' (expected 'cpu', 'cuda' or 'cuda:N')");
  }
}

c10::optional<at::Device> Args::optDevice(size_t i) const {
  if (isAbsent(i)) return c10::nullopt;
  return device(i);
}

at::TensorOptions Args::options(size_t i) const {
  at::TensorOptions options;
  if (auto d = optDtype(i)) options = options.dtype(*d);
  if (auto d = optDevice(i + 1)) options = options.device(*d);
  return options;
}

void defineExports(Napi::Env env, Napi::Object exports, const Export* table, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    napi_value fn = nullptr;
    napi_status status = napi_create_function(env, table[i].name, NAPI_AUTO_LENGTH, trampoline,
                                              const_cast<Export*>(&table[i]), &fn);
    NAPI_THROW_IF_FAILED_VOID(env, status);
    exports.Set(table[i].name, Napi::Value(env, fn));
  }
}

}  // namespace mmssl
