// torch.* tensor ops: pointwise, comparison, linear algebra, reductions, views and in-place updates.
// Each entry is one line; argument order is the TypeScript method's, with the tensor itself first.
#include "common.h"

namespace mmssl {
namespace {

// Reductions take an optional list of dims: absent reduces over every element, as PyTorch's `dim=None`.
template <typename All, typename Dims>
Napi::Value reduce(Args& a, All all, Dims dims) {
  if (a.isAbsent(1)) return a.wrap(all(a.tensor(0)));
  return a.wrap(dims(a.tensor(0), a.ints(1), a.boolean(2)));
}

// max/min: without a dim, the extreme value; with one, PyTorch's (values, indices) pair.
template <typename All, typename AlongDim>
Napi::Value extreme(Args& a, All all, AlongDim alongDim) {
  if (a.isAbsent(1)) return a.wrap(all(a.tensor(0)));
  auto [values, indices] = alongDim(a.tensor(0), a.int64(1), a.boolean(2));
  return a.wrapList({values, indices});
}

// Division with the optional rounding mode ('trunc' or 'floor') at argument 3.
template <typename Other>
at::Tensor divide(const Args& a, const Other& other) {
  if (a.isAbsent(3)) return at::div(a.tensor(0), other);
  std::string mode = a.string(3);
  return at::div(a.tensor(0), other, c10::string_view(mode));
}

// clamp's bounds: either may be absent (PyTorch's None).
c10::optional<at::Scalar> bound(const Args& a, size_t i) {
  return a.isAbsent(i) ? c10::optional<at::Scalar>() : c10::optional<at::Scalar>(a.scalar(i));
}

const Export kExports[] = {
    // pointwise arithmetic: (self, other, otherIsScalar, ...), other a tensor or a number (see binary())
    MMSSL_TENSOR_OP("add", binary(a, 1, [&](const auto& o) { return at::add(a.tensor(0), o, a.scalar(3)); })),
    MMSSL_TENSOR_OP("sub", binary(a, 1, [&](const auto& o) { return at::sub(a.tensor(0), o, a.scalar(3)); })),
    MMSSL_TENSOR_OP("mul", binary(a, 1, [&](const auto& o) { return at::mul(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("div", binary(a, 1, [&](const auto& o) { return divide(a, o); })),
    MMSSL_TENSOR_OP("pow", binary(a, 1, [&](const auto& o) { return at::pow(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("neg", at::neg(a.tensor(0))),
    MMSSL_TENSOR_OP("exp", at::exp(a.tensor(0))),
    MMSSL_TENSOR_OP("log", at::log(a.tensor(0))),
    MMSSL_TENSOR_OP("sqrt", at::sqrt(a.tensor(0))),
    MMSSL_TENSOR_OP("rsqrt", at::rsqrt(a.tensor(0))),
    MMSSL_TENSOR_OP("abs", at::abs(a.tensor(0))),
    MMSSL_TENSOR_OP("round", at::round(a.tensor(0))),
    MMSSL_TENSOR_OP("sign", at::sign(a.tensor(0))),
    MMSSL_TENSOR_OP("sin", at::sin(a.tensor(0))),
    MMSSL_TENSOR_OP("cos", at::cos(a.tensor(0))),
    MMSSL_TENSOR_OP("clamp", at::clamp(a.tensor(0), bound(a, 1), bound(a, 2))),
    MMSSL_TENSOR_OP("sigmoid", at::sigmoid(a.tensor(0))),
    MMSSL_TENSOR_OP("tanh", at::tanh(a.tensor(0))),
    MMSSL_TENSOR_OP("relu", at::relu(a.tensor(0))),
    MMSSL_TENSOR_OP("maximum", at::maximum(a.tensor(0), a.tensor(1))),
    MMSSL_TENSOR_OP("minimum", at::minimum(a.tensor(0), a.tensor(1))),
    // comparisons and selection
    MMSSL_TENSOR_OP("eq", binary(a, 1, [&](const auto& o) { return at::eq(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("ne", binary(a, 1, [&](const auto& o) { return at::ne(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("lt", binary(a, 1, [&](const auto& o) { return at::lt(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("le", binary(a, 1, [&](const auto& o) { return at::le(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("gt", binary(a, 1, [&](const auto& o) { return at::gt(a.tensor(0), o); })),
    MMSSL_TENSOR_OP("ge", binary(a, 1, [&](const auto& o) { return at::ge(a.tensor(0), o); })),
    // where(condition, x, xIsScalar, y, yIsScalar): either value may be a number
    MMSSL_TENSOR_OP("where", at::where(a.tensor(0), a.boolean(2) ? a.wrappedScalar(1) : a.tensor(1),
                                       a.boolean(4) ? a.wrappedScalar(3) : a.tensor(3))),
    MMSSL_TENSOR_OP("logicalNot", at::logical_not(a.tensor(0))),
    MMSSL_TENSOR_OP("isnan", at::isnan(a.tensor(0))),
    MMSSL_TENSOR_OP("isfinite", at::isfinite(a.tensor(0))),
    MMSSL_TENSOR_OP("allclose", at::scalar_tensor(at::allclose(a.tensor(0), a.tensor(1), a.number(2), a.number(3)),
                                                  at::kBool)),
    // linear algebra
    MMSSL_TENSOR_OP("matmul", at::matmul(a.tensor(0), a.tensor(1))),
    MMSSL_TENSOR_OP("mm", at::mm(a.tensor(0), a.tensor(1))),
    MMSSL_TENSOR_OP("bmm", at::bmm(a.tensor(0), a.tensor(1))),
    // reductions
    {"sum", [](Args& a) { return reduce(a, [](const at::Tensor& t) { return at::sum(t); },
                                        [](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::sum(t, d, k); }); }},
    {"mean", [](Args& a) { return reduce(a, [](const at::Tensor& t) { return at::mean(t); },
                                         [](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::mean(t, d, k); }); }},
    {"logsumexp", [](Args& a) {
       return reduce(a, [](const at::Tensor& t) { return at::logsumexp(t.reshape({-1}), {0}); },
                     [](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::logsumexp(t, d, k); });
     }},
    {"std", [](Args& a) {
       bool unbiased = a.boolean(3);
       if (a.isAbsent(1)) return a.wrap(at::std(a.tensor(0), unbiased));
       return a.wrap(at::std(a.tensor(0), at::IntArrayRef(a.ints(1)), unbiased, a.boolean(2)));
     }},
    {"var", [](Args& a) {
       bool unbiased = a.boolean(3);
       if (a.isAbsent(1)) return a.wrap(at::var(a.tensor(0), unbiased));
       return a.wrap(at::var(a.tensor(0), at::IntArrayRef(a.ints(1)), unbiased, a.boolean(2)));
     }},
    {"norm", [](Args& a) {
       if (a.isAbsent(1)) return a.wrap(at::norm(a.tensor(0), a.scalar(3)));
       return a.wrap(at::norm(a.tensor(0), a.scalar(3), at::IntArrayRef(a.ints(1)), a.boolean(2)));
     }},
    {"max", [](Args& a) { return extreme(a, [](const at::Tensor& t) { return at::max(t); },
                                         [](const at::Tensor& t, int64_t d, bool k) { return at::max(t, d, k); }); }},
    {"min", [](Args& a) { return extreme(a, [](const at::Tensor& t) { return at::min(t); },
                                         [](const at::Tensor& t, int64_t d, bool k) { return at::min(t, d, k); }); }},
    MMSSL_TENSOR_OP("argmax", at::argmax(a.tensor(0), a.optInt64(1), a.boolean(2))),
    MMSSL_TENSOR_OP("argmin", at::argmin(a.tensor(0), a.optInt64(1), a.boolean(2))),
    {"topk", [](Args& a) {
       auto [values, indices] = at::topk(a.tensor(0), a.int64(1), a.int64(2), a.boolean(3), a.boolean(4));
       return a.wrapList({values, indices});
     }},
    // views and re-arrangements
    MMSSL_TENSOR_OP("reshape", a.tensor(0).reshape(a.ints(1))),
    MMSSL_TENSOR_OP("view", a.tensor(0).view(a.ints(1))),
    MMSSL_TENSOR_OP("viewDtype", a.tensor(0).view(a.dtype(1))),
    MMSSL_TENSOR_OP("flatten", a.tensor(0).flatten(a.int64(1), a.int64(2))),
    MMSSL_TENSOR_OP("squeeze", a.isAbsent(1) ? a.tensor(0).squeeze() : a.tensor(0).squeeze(a.int64(1))),
    MMSSL_TENSOR_OP("unsqueeze", a.tensor(0).unsqueeze(a.int64(1))),
    MMSSL_TENSOR_OP("permute", a.tensor(0).permute(a.ints(1))),
    MMSSL_TENSOR_OP("transpose", a.tensor(0).transpose(a.int64(1), a.int64(2))),
    MMSSL_TENSOR_OP("asStrided", a.tensor(0).as_strided(a.ints(1), a.ints(2), a.int64(3))),
    MMSSL_TENSOR_OP("narrow", a.tensor(0).narrow(a.int64(1), a.int64(2), a.int64(3))),
    MMSSL_TENSOR_OP("slice", a.tensor(0).slice(a.int64(1), a.optInt64(2), a.optInt64(3), a.int64(4))),
    MMSSL_TENSOR_OP("select", a.tensor(0).select(a.int64(1), a.int64(2))),
    MMSSL_TENSOR_OP("indexSelect", at::index_select(a.tensor(0), a.int64(1), a.tensor(2))),
    MMSSL_TENSOR_OP("gather", at::gather(a.tensor(0), a.int64(1), a.tensor(2))),
    MMSSL_TENSOR_OP("cat", at::cat(a.tensors(0), a.int64(1))),
    MMSSL_TENSOR_OP("stack", at::stack(a.tensors(0), a.int64(1))),
    MMSSL_TENSOR_OP("flip", at::flip(a.tensor(0), a.ints(1))),
    MMSSL_TENSOR_OP("expand", a.tensor(0).expand(a.ints(1))),
    MMSSL_TENSOR_OP("repeat", a.tensor(0).repeat(a.ints(1))),
    // in-place updates: the JS object keeps its handle, so these return nothing
    MMSSL_INPLACE_OP("add_", binary(a, 1, [&](const auto& o) { return a.tensor(0).add_(o, a.scalar(3)); })),
    MMSSL_INPLACE_OP("sub_", binary(a, 1, [&](const auto& o) { return a.tensor(0).sub_(o, a.scalar(3)); })),
    MMSSL_INPLACE_OP("mul_", binary(a, 1, [&](const auto& o) { return a.tensor(0).mul_(o); })),
    MMSSL_INPLACE_OP("div_", binary(a, 1, [&](const auto& o) { return a.tensor(0).div_(o); })),
    MMSSL_INPLACE_OP("relu_", a.tensor(0).relu_()),
    MMSSL_INPLACE_OP("clamp_", a.tensor(0).clamp_(bound(a, 1), bound(a, 2))),
    MMSSL_INPLACE_OP("zero_", a.tensor(0).zero_()),
    MMSSL_INPLACE_OP("fill_", a.tensor(0).fill_(a.scalar(1))),
    MMSSL_INPLACE_OP("copy_", a.tensor(0).copy_(a.tensor(1))),
    MMSSL_INPLACE_OP("uniform_", a.tensor(0).uniform_(a.number(1), a.number(2))),
    MMSSL_INPLACE_OP("normal_", a.tensor(0).normal_(a.number(1), a.number(2))),
};

}  // namespace

void initOps(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
