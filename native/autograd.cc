// Autograd: requires_grad, backward, grads, grad mode.
#include "common.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

namespace mmssl {
namespace {

Napi::Value backward(Args& a) {
  at::Tensor t = a.tensor(0);
  c10::optional<bool> retainGraph;
  if (!a.isAbsent(2)) retainGraph = a.boolean(2);
  t.backward(a.optTensor(1).value_or(at::Tensor()), retainGraph, a.boolean(3));
  return a.undefined();
}

// torch.autograd.grad: gradients of `outputs` with respect to `inputs`, returned rather than accumulated.
Napi::Value grad(Args& a) {
  std::vector<at::Tensor> outputs = a.tensors(0), inputs = a.tensors(1);
  std::vector<at::Tensor> gradOutputs = a.isAbsent(2) ? std::vector<at::Tensor>() : a.tensors(2);
  c10::optional<bool> retainGraph;
  if (!a.isAbsent(3)) retainGraph = a.boolean(3);
  return a.wrapList(torch::autograd::grad(outputs, inputs, gradOutputs, retainGraph, a.boolean(4), a.boolean(5)));
}

// Optimizers' zero_grad over all parameters in one call: set to None, or zero in place.
Napi::Value zeroGrad(Args& a) {
  bool setToNone = a.boolean(1);
  for (const at::Tensor& p : a.tensors(0)) {
    at::Tensor& g = p.mutable_grad();
    if (!g.defined()) continue;
    if (setToNone) {
      g.reset();
    } else {
      if (g.grad_fn())
        g = g.detach();
      else
        g.requires_grad_(false);
      g.zero_();
    }
  }
  return a.undefined();
}

const Export kExports[] = {
    {"backward", backward},
    {"autogradGrad", grad},
    {"zeroGrad", zeroGrad},
    MMSSL_TENSOR_OP("grad", a.tensor(0).grad()),
    MMSSL_INPLACE_OP("setGrad", a.tensor(0).mutable_grad() = a.optTensor(1).value_or(at::Tensor())),
    {"requiresGrad", [](Args& a) -> Napi::Value { return a.value(a.tensor(0).requires_grad()); }},
    MMSSL_INPLACE_OP("requiresGrad_", a.tensor(0).requires_grad_(a.boolean(1))),
    {"isLeaf", [](Args& a) -> Napi::Value { return a.value(a.tensor(0).is_leaf()); }},
    {"gradFn",
     [](Args& a) -> Napi::Value {
       auto fn = a.tensor(0).grad_fn();
       return fn ? Napi::String::New(a.env(), fn->name()) : a.env().Null();
     }},
    MMSSL_INPLACE_OP("retainGrad", a.tensor(0).retain_grad()),
    MMSSL_TENSOR_OP("detach", a.tensor(0).detach()),
    // PyTorch's `param.data = src`: the tensor keeps its identity (and autograd metadata) but uses src's data, which
    // is how Module.to() moves parameters without invalidating the optimizers that hold them.
    MMSSL_INPLACE_OP("setData", a.tensor(0).set_data(a.tensor(1))),
    {"isGradEnabled", [](Args& a) -> Napi::Value { return a.value(c10::GradMode::is_enabled()); }},
    MMSSL_INPLACE_OP("setGradEnabled", c10::GradMode::set_enabled(a.boolean(0))),
};

}  // namespace

void initAutograd(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
