// Tensor handles: factories, data in and out, metadata, conversion, disposal and live counters.
#include <unordered_set>

#include "common.h"

namespace mmssl {
namespace {

// The dtypes mmssl exposes, with PyTorch's names. lib/torch/dtype.ts reads this table; it is the single source.
const std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
    {"uint8", at::kByte},    {"bool", at::kBool},
};

at::ScalarType typedArrayDtype(const Args& a, size_t i, napi_typedarray_type type) {
  switch (type) {
    case napi_float32_array:
      return at::kFloat;
    case napi_float64_array:
      return at::kDouble;
    case napi_int32_array:
      return at::kInt;
    case napi_int16_array:
      return at::kShort;
    case napi_int8_array:
      return at::kChar;
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return at::kByte;
    case napi_bigint64_array:
      return at::kLong;
    default:
      a.typeError(i, "a Float32/Float64/Int32/Int16/Int8/Uint8/BigInt64 array");
  }
}

struct TypedArrayView {
  void* data;
  size_t bytes;
  at::ScalarType dtype;
  Napi::TypedArray array;
};

TypedArrayView readTypedArray(const Args& a, size_t i) {
  if (!a[i].IsTypedArray()) a.typeError(i, "a typed array");
  auto array = a[i].As<Napi::TypedArray>();
  at::ScalarType dtype = typedArrayDtype(a, i, array.TypedArrayType());
  auto* base = static_cast<uint8_t*>(array.ArrayBuffer().Data());
  return {base + array.ByteOffset(), array.ByteLength(), dtype, array};
}

void checkElementCount(const Args& a, const std::vector<int64_t>& shape, const TypedArrayView& view) {
  int64_t numel = 1;
  for (int64_t s : shape) {
    if (s < 0) a.fail(ErrorKind::Argument, "negative size in shape " + shapeString(shape));
    numel *= s;
  }
  int64_t have = static_cast<int64_t>(view.bytes / at::elementSize(view.dtype));
  if (numel != have) {
    a.fail(ErrorKind::Argument, "shape " + shapeString(shape) + " needs " + std::to_string(numel) +
                                    " elements, the array has " + std::to_string(have));
  }
}

// A fresh, contiguous CPU copy, by default in a dtype JS can view (float16/bfloat16 are widened to float32).
at::Tensor hostCopy(const at::Tensor& t, bool widen = true) {
  at::ScalarType dtype = t.scalar_type();
  if (widen && (dtype == at::kHalf || dtype == at::kBFloat16)) dtype = at::kFloat;
  at::Tensor out = at::empty(t.sizes(), at::TensorOptions().dtype(dtype).device(at::kCPU));
  out.copy_(t.detach());
  return out;
}

// An ArrayBuffer over a host tensor's memory, without a copy; the buffer keeps the tensor alive.
Napi::ArrayBuffer arrayBufferOver(Napi::Env env, at::Tensor host) {
  size_t bytes = host.numel() * host.element_size();
  if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);
  auto* owner = new at::Tensor(std::move(host));
  return Napi::ArrayBuffer::New(
      env, owner->data_ptr(), bytes, [](Napi::Env, void*, at::Tensor* t) { delete t; }, owner);
}

Napi::Value fromTypedArray(Args& a) {
  TypedArrayView view = readTypedArray(a, 0);
  std::vector<int64_t> shape = a.ints(1);
  checkElementCount(a, shape, view);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(view.dtype));
  if (view.bytes) std::memcpy(t.data_ptr(), view.data, view.bytes);
  at::TensorOptions target = a.options(2);
  if (target.has_dtype() || target.has_device()) {
    t = t.to(target.device_opt().value_or(at::kCPU), target.dtype_opt().value_or(t.dtype()).toScalarType());
  }
  return a.wrap(t);
}

// fromBytes(bytes, shape, dtype): a tensor of any dtype from its raw little-endian element bytes (file formats such
// as safetensors store float16/bfloat16 as such; no typed array views them).
Napi::Value fromBytes(Args& a) {
  if (!a[0].IsTypedArray()) a.typeError(0, "a Uint8Array");
  auto array = a[0].As<Napi::TypedArray>();
  std::vector<int64_t> shape = a.ints(1);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(a.dtype(2)));
  size_t bytes = t.numel() * t.element_size();
  if (bytes != array.ByteLength()) {
    a.fail(ErrorKind::Argument, "shape " + shapeString(shape) + " of " + std::string(c10::toString(t.scalar_type())) +
                                    " needs " + std::to_string(bytes) + " bytes, got " +
                                    std::to_string(array.ByteLength()));
  }
  if (bytes) std::memcpy(t.data_ptr(), static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset(), bytes);
  return a.wrap(t);
}

Napi::Value fromBuffer(Args& a) {
  TypedArrayView view = readTypedArray(a, 0);
  std::vector<int64_t> shape = a.ints(1);
  checkElementCount(a, shape, view);
  napi_env env = a.env();
  napi_ref ref = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_create_reference(env, view.array.ArrayBuffer(), 1, &ref), Napi::Value());
  std::shared_ptr<EnvState> state = envStateShared(a.env());
  auto keepAlive = [state, env, ref](void*) { releaseRefSoon(state, env, ref); };
  return a.wrap(at::from_blob(view.data, shape, keepAlive, at::TensorOptions().dtype(view.dtype)));
}

Napi::Value item(Args& a) {
  at::Tensor t = a.tensor(0);
  if (t.numel() != 1) {
    a.fail(ErrorKind::Argument, "a tensor of " + std::to_string(t.numel()) + " elements (shape " +
                                    shapeString(t.sizes()) + ") has no single value");
  }
  at::Scalar s = t.item();
  if (s.isBoolean()) return a.value(s.toBool());
  if (s.isIntegral(false)) return a.value(static_cast<double>(s.toLong()));
  return a.value(s.toDouble());
}

// PyTorch's memory formats under their camelCase names; absent means the op's default.
c10::optional<at::MemoryFormat> optMemoryFormat(const Args& a, size_t i) {
  if (a.isAbsent(i)) return c10::nullopt;
  std::string name = a.string(i);
  if (name == "contiguousFormat") return at::MemoryFormat::Contiguous;
  if (name == "channelsLast") return at::MemoryFormat::ChannelsLast;
  if (name == "preserveFormat") return at::MemoryFormat::Preserve;
  a.typeError(i, "'contiguousFormat', 'channelsLast' or 'preserveFormat'");
}

Napi::Value to(Args& a) {
  at::Tensor t = a.tensor(0);
  at::ScalarType dtype = a.optDtype(1).value_or(t.scalar_type());
  at::Device device = a.optDevice(2).value_or(t.device());
  return a.wrap(t.to(device, dtype, a.boolean(3), a.boolean(4), optMemoryFormat(a, 5)));
}

Napi::Value shape(Args& a) {
  at::IntArrayRef sizes = a.tensor(0).sizes();
  Napi::Array out = Napi::Array::New(a.env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(sizes[i]));
  return out;
}

// Live tensors, the bytes of their storages per device (each storage once), and the other native objects by kind.
Napi::Value memoryStats(Args& a) {
  EnvState& state = envState(a.env());
  Napi::Object bytes = Napi::Object::New(a.env());
  std::unordered_set<const void*> seen;
  state.tensors.forEach([&](const TensorEntry& entry) {
    const at::Tensor& t = entry.tensor;
    if (!t.has_storage() || !seen.insert(t.storage().unsafeGetStorageImpl()).second) return;
    std::string device = t.device().str();
    double before = bytes.Has(device) ? bytes.Get(device).As<Napi::Number>().DoubleValue() : 0.0;
    bytes.Set(device, before + static_cast<double>(t.storage().nbytes()));
  });
  Napi::Object objects = Napi::Object::New(a.env());
  for (const char* name : kObjectKindNames) objects.Set(name, 0.0);
  state.objects.forEach([&](const ObjectEntry& entry) {
    const char* name = kObjectKindNames[static_cast<size_t>(entry.kind)];
    objects.Set(name, objects.Get(name).As<Napi::Number>().DoubleValue() + 1);
  });
  Napi::Object out = Napi::Object::New(a.env());
  out.Set("tensors", static_cast<double>(state.tensors.size()));
  out.Set("bytes", bytes);
  out.Set("objects", objects);
  return out;
}

// Releases a whole tidy() scope's handles in one call.
Napi::Value disposeAll(Args& a) {
  if (!a[0].IsArray()) a.typeError(0, "an array of tensor handles");
  Napi::Array handles = a[0].As<Napi::Array>();
  for (uint32_t i = 0, n = handles.Length(); i < n; ++i) {
    Napi::Value h = handles.Get(i);
    if (h.IsNumber()) release(a.env(), h.As<Napi::Number>().DoubleValue());
  }
  return a.undefined();
}

// setErrorFactories([argument, disposed, distributed, torch]): functions (message, op) => Error, in ErrorKind's order.
Napi::Value setErrorFactories(Args& a) {
  EnvState& state = envState(a.env());
  if (!a[0].IsArray() || a[0].As<Napi::Array>().Length() != kErrorKinds)
    a.typeError(0, "an array of 4 error factories");
  Napi::Array factories = a[0].As<Napi::Array>();
  for (uint32_t i = 0; i < kErrorKinds; ++i) {
    if (!factories.Get(i).IsFunction()) a.typeError(0, "an array of 4 error factories");
  }
  for (uint32_t i = 0; i < kErrorKinds; ++i)
    state.errorFactories[i] = Napi::Persistent(factories.Get(i).As<Napi::Function>());
  return a.undefined();
}

const Export kExports[] = {
    {"setErrorFactories", setErrorFactories},
    {"dispose", [](Args& a) -> Napi::Value { return a.value(release(a.env(), a.handle(0))); }},
    {"disposeAll", disposeAll},
    {"memoryStats", memoryStats},
    {"shape", shape},
    {"dtype", [](Args& a) -> Napi::Value { return a.value(static_cast<double>(a.tensor(0).scalar_type())); }},
    {"device", [](Args& a) -> Napi::Value { return Napi::String::New(a.env(), a.tensor(0).device().str()); }},
    {"numel", [](Args& a) -> Napi::Value { return a.value(static_cast<double>(a.tensor(0).numel())); }},
    {"isContiguous",
     [](Args& a) -> Napi::Value {
       return a.value(a.tensor(0).is_contiguous(optMemoryFormat(a, 1).value_or(at::MemoryFormat::Contiguous)));
     }},
    {"isPinned", [](Args& a) -> Napi::Value { return a.value(a.tensor(0).is_pinned()); }},
    MMSSL_TENSOR_OP("pinMemory", a.tensor(0).pin_memory()),
    {"fromTypedArray", fromTypedArray},
    {"fromBuffer", fromBuffer},
    {"toArrayBuffer", [](Args& a) -> Napi::Value { return arrayBufferOver(a.env(), hostCopy(a.tensor(0))); }},
    {"fromBytes", fromBytes},
    // The raw element bytes of a fresh contiguous CPU copy, whatever the dtype.
    {"toBytes", [](Args& a) -> Napi::Value { return arrayBufferOver(a.env(), hostCopy(a.tensor(0), false)); }},
    {"toArrayBufferAsync",
     [](Args& a) -> Napi::Value {
       return PromiseWorker::start(a, [source = a.tensor(0)]() mutable -> PromiseWorker::Completion {
         auto host = std::make_shared<at::Tensor>(hostCopy(source));
         source.reset();
         return [host](Napi::Env env) -> Napi::Value { return arrayBufferOver(env, std::move(*host)); };
       });
     }},
    {"item", item},
    {"to", to},
    MMSSL_TENSOR_OP("contiguous", a.tensor(0).contiguous(optMemoryFormat(a, 1).value_or(at::MemoryFormat::Contiguous))),
    MMSSL_TENSOR_OP("clone", a.tensor(0).clone()),
    MMSSL_TENSOR_OP("zeros", at::zeros(a.ints(0), a.options(1))),
    MMSSL_TENSOR_OP("ones", at::ones(a.ints(0), a.options(1))),
    MMSSL_TENSOR_OP("empty", at::empty(a.ints(0), a.options(1))),
    MMSSL_TENSOR_OP("full", at::full(a.ints(0), a.scalar(1), a.options(2))),
    MMSSL_TENSOR_OP("arange", at::arange(a.scalar(0), a.scalar(1), a.scalar(2), a.options(3))),
    MMSSL_TENSOR_OP("linspace", at::linspace(a.scalar(0), a.scalar(1), a.int64(2), a.options(3))),
    MMSSL_TENSOR_OP("rand", at::rand(a.ints(0), a.options(1))),
    MMSSL_TENSOR_OP("randn", at::randn(a.ints(0), a.options(1))),
    MMSSL_TENSOR_OP("randint", at::randint(a.int64(0), a.int64(1), a.ints(2),
                                           a.options(3).dtype(a.optDtype(3).value_or(at::kLong)))),
    MMSSL_TENSOR_OP("zerosLike", at::zeros_like(a.tensor(0), a.options(1))),
    MMSSL_TENSOR_OP("onesLike", at::ones_like(a.tensor(0), a.options(1))),
    MMSSL_TENSOR_OP("fullLike", at::full_like(a.tensor(0), a.scalar(1), a.options(2))),
    MMSSL_TENSOR_OP("randLike", at::rand_like(a.tensor(0), a.options(1))),
    MMSSL_TENSOR_OP("randnLike", at::randn_like(a.tensor(0), a.options(1))),
};

}  // namespace

void initTensor(Napi::Env env, Napi::Object exports) {
  defineExports(env, exports, kExports);
  Napi::Object dtypes = Napi::Object::New(env);
  for (const auto& [name, type] : kDtypes) dtypes.Set(name, static_cast<double>(type));
  exports.Set("dtypeCodes", dtypes);
}

}  // namespace mmssl
