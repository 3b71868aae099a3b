#include "common.h"

#include <sstream>

namespace mmssl {
namespace {

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

// An error of the class registered for `kind`, from its factory (message, op); a plain Error before lib/native.ts
// registered them.
Napi::Value makeError(Napi::Env env, ErrorKind kind, const std::string& message, const char* op) {
  Napi::FunctionReference& factory = envState(env).errorFactories[static_cast<size_t>(kind)];
  if (factory.IsEmpty()) return Napi::Error::New(env, message).Value();
  return factory.Call({Napi::String::New(env, message), Napi::String::New(env, op)});
}

napi_value trampoline(napi_env env, napi_callback_info cbinfo) {
  const char* op = "native call";
  try {
    Napi::CallbackInfo info(env, cbinfo);
    const Export* entry = static_cast<const Export*>(info.Data());
    op = entry->name;
    Args args(info, op);
    return entry->fn(args);
  } catch (...) {
    // Throwing can itself fail (and throw) while a worker thread is being terminated: never let that escape.
    try {
      Napi::Error(env, errorValue(Napi::Env(env), op, std::current_exception())).ThrowAsJavaScriptException();
    } catch (...) {
    }
  }
  return nullptr;
}

}  // namespace

Napi::Value errorValue(Napi::Env env, const char* op, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Napi::Error& e) {
    return e.Value();
  } catch (const JsError& e) {
    return makeError(env, e.kind, e.what(), op);
  } catch (const c10::Error& e) {
    return makeError(env, ErrorKind::Torch, std::string(op) + ": " + e.what_without_backtrace(), op);
  } catch (const std::exception& e) {
    return makeError(env, ErrorKind::Torch, std::string(op) + ": " + e.what(), op);
  } catch (...) {
    return makeError(env, ErrorKind::Torch, std::string(op) + ": unknown native exception", op);
  }
}

EnvState& envState(Napi::Env env) { return **env.GetInstanceData<std::shared_ptr<EnvState>>(); }

std::shared_ptr<EnvState> envStateShared(Napi::Env env) { return *env.GetInstanceData<std::shared_ptr<EnvState>>(); }

const at::Tensor* findTensor(Napi::Env env, const Napi::Value& handle) {
  TensorEntry* entry =
      handle.IsNumber() ? envState(env).tensors.find(handle.As<Napi::Number>().DoubleValue()) : nullptr;
  return entry ? &entry->tensor : nullptr;
}

bool release(Napi::Env env, double handle) {
  EnvState& state = envState(env);
  TensorEntry* entry = state.tensors.find(handle);
  if (entry == nullptr) return false;
  if (entry->externalBytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -entry->externalBytes);
  return state.tensors.erase(handle);
}

void releaseAll(EnvState& state) {
  state.alive = false;
  state.tensors.clear();
  state.objects.clear();
  for (Napi::FunctionReference& factory : state.errorFactories) factory.Reset();
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
  int64_t bytes = ownedBytes(tensor);
  double handle = state.tensors.insert({std::move(tensor), bytes});
  if (bytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return Napi::Number::New(env, handle);
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.Set(static_cast<uint32_t>(i), wrap(env, tensors[i]));
  return out;
}

Napi::Value wrapObject(Napi::Env env, ObjectKind kind, std::shared_ptr<void> object) {
  return Napi::Number::New(env, envState(env).objects.insert({kind, std::move(object)}));
}

std::string shapeString(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// ---- Args -----------------------------------------------------------------------------------------------------------

namespace {

std::string describeValue(const Napi::Value& v) {
  return v.IsUndefined() ? "undefined"
         : v.IsNull()    ? "null"
         : v.IsNumber()  ? "number " + v.ToString().Utf8Value()
         : v.IsString()  ? "string"
         : v.IsBoolean() ? "boolean"
         : v.IsArray()   ? "array"
                         : "object";
}

bool isSafeInteger(double d) { return std::isfinite(d) && d == std::trunc(d) && std::fabs(d) <= 9007199254740992.0; }

}  // namespace

void Args::fail(ErrorKind kind, const std::string& message) const {
  throw JsError(kind, std::string(op_) + ": " + message);
}

void Args::typeError(size_t i, const std::string& expected) const {
  fail(ErrorKind::Argument,
       "argument " + std::to_string(i) + " must be " + expected + ", got " + describeValue(info_[i]));
}

double Args::handle(size_t i) const {
  if (!info_[i].IsNumber()) typeError(i, "a tensor");
  return info_[i].As<Napi::Number>().DoubleValue();
}

at::Tensor Args::tensor(size_t i) const {
  TensorEntry* entry = envState(env()).tensors.find(handle(i));
  if (entry == nullptr) fail(ErrorKind::Disposed, "argument " + std::to_string(i) + " is a disposed tensor");
  return entry->tensor;
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
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); ++k) {
    const at::Tensor* t = findTensor(env(), array.Get(k));
    if (t == nullptr) typeError(i, "an array of live tensors (element " + std::to_string(k) + " is not one)");
    out.push_back(*t);
  }
  return out;
}

ObjectEntry& Args::objectEntry(size_t i, ObjectKind kind) const {
  const char* what = kObjectKindDescriptions[static_cast<size_t>(kind)];
  double number = info_[i].IsNumber() ? info_[i].As<Napi::Number>().DoubleValue() : 0;
  if (!info_[i].IsNumber() || !decltype(EnvState::objects)::owns(number)) typeError(i, what);
  ObjectEntry* entry = envState(env()).objects.find(number);
  if (entry == nullptr)
    fail(ErrorKind::Disposed, "argument " + std::to_string(i) + " is " + what + " that was disposed");
  if (entry->kind != kind) typeError(i, what);
  return *entry;
}

at::Scalar Args::scalar(size_t i) const {
  Napi::Value v = info_[i];
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = number(i);
  if (isSafeInteger(d)) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

double Args::number(size_t i) const {
  if (!info_[i].IsNumber()) typeError(i, "a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

int64_t Args::int64(size_t i) const {
  if (!info_[i].IsNumber() || !isSafeInteger(info_[i].As<Napi::Number>().DoubleValue())) typeError(i, "an integer");
  return static_cast<int64_t>(info_[i].As<Napi::Number>().DoubleValue());
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
    if (!isSafeInteger(d)) typeError(i, "an array of integers (element " + std::to_string(k) + " is not one)");
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
    fail(ErrorKind::Argument, "unknown device '" + name + "' (expected 'cpu', 'cuda' or 'cuda:N')");
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

// ---- Options --------------------------------------------------------------------------------------------------------

Options::Options(const Args& a, size_t index) : a_(a), index_(index) {
  if (!a[index].IsObject() || a[index].IsArray()) a.typeError(index, "an options object");
  object_ = a[index].As<Napi::Object>();
}

void Options::wrongType(const char* key, const char* expected) const {
  a_.fail(ErrorKind::Argument, "option '" + std::string(key) + "' (argument " + std::to_string(index_) + ") must be " +
                                   expected + ", got " + describeValue(object_.Get(key)));
}

bool Options::has(const char* key) const {
  Napi::Value v = object_.Get(key);
  return !v.IsUndefined();
}

double Options::number(const char* key) const {
  Napi::Value v = object_.Get(key);
  if (!v.IsNumber()) wrongType(key, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

double Options::number(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }

bool Options::flag(const char* key) const {
  Napi::Value v = object_.Get(key);
  if (!v.IsBoolean()) wrongType(key, "a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string Options::text(const char* key) const {
  Napi::Value v = object_.Get(key);
  if (!v.IsString()) wrongType(key, "a string");
  return v.As<Napi::String>().Utf8Value();
}

std::string Options::text(const char* key, const std::string& fallback) const {
  return has(key) ? text(key) : fallback;
}

// ---- exports and async work -----------------------------------------------------------------------------------------

void defineExports(Napi::Env env, Napi::Object exports, const Export* table, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    napi_value fn = nullptr;
    napi_status status =
        napi_create_function(env, table[i].name, NAPI_AUTO_LENGTH, trampoline, const_cast<Export*>(&table[i]), &fn);
    NAPI_THROW_IF_FAILED_VOID(env, status);
    exports.Set(table[i].name, Napi::Value(env, fn));
  }
}

PromiseWorker::PromiseWorker(Napi::Env env, const char* op, std::function<Completion()> work)
    : Napi::AsyncWorker(env, op), deferred_(Napi::Promise::Deferred::New(env)), op_(op), work_(std::move(work)) {}

Napi::Value PromiseWorker::start(const Args& a, std::function<Completion()> work) {
  auto* worker = new PromiseWorker(a.env(), a.op(), std::move(work));
  Napi::Promise promise = worker->deferred_.Promise();
  worker->Queue();
  return promise;
}

void PromiseWorker::Execute() {
  try {
    completion_ = work_();
  } catch (...) {
    error_ = std::current_exception();
  }
  work_ = nullptr;  // what it captured (tensors, groups) is released off the JS thread's critical path
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (!error_) {
    try {
      deferred_.Resolve(completion_(env));
      completion_ = nullptr;
      return;
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  completion_ = nullptr;
  deferred_.Reject(errorValue(env, op_, error_));
}

}  // namespace mmssl
