// torch.nn.functional.*: the layers the backbones and losses are built from.
#include "common.h"

namespace mmssl {
namespace {

// PyTorch's reduction names, as the loss functions take them.
int64_t reduction(const Args& a, size_t i) {
  std::string name = a.string(i);
  if (name == "none") return at::Reduction::None;
  if (name == "mean") return at::Reduction::Mean;
  if (name == "sum") return at::Reduction::Sum;
  a.fail(ErrorKind::Argument, "reduction must be 'none', 'mean' or 'sum', got '" + name + "'");
}

// x / max(||x||_p, eps) along dim, exactly as F.normalize computes it.
at::Tensor normalize(const at::Tensor& x, double p, int64_t dim, double eps) {
  at::Tensor denom = x.norm(p, dim, /*keepdim=*/true).clamp_min(eps).expand_as(x);
  return x / denom;
}

// Bilinear or nearest resize to a given size; `scales` are passed on as F.interpolate does for a scale_factor.
// Antialiased bilinear (arg 6) widens the filter when shrinking, as F.interpolate(antialias=True) and torchvision do.
at::Tensor interpolate(const Args& a) {
  at::Tensor x = a.tensor(0);
  std::vector<int64_t> size = a.ints(1);
  std::string mode = a.string(2);
  c10::optional<double> sh = a.optNumber(4), sw = a.optNumber(5);
  if (mode == "bilinear" && a.boolean(6)) return at::_upsample_bilinear2d_aa(x, size, a.boolean(3), sh, sw);
  if (mode == "bilinear") return at::upsample_bilinear2d(x, size, a.boolean(3), sh, sw);
  if (mode == "nearest") return at::upsample_nearest2d(x, size, sh, sw);
  a.fail(ErrorKind::Argument, "mode must be 'bilinear' or 'nearest', got '" + mode + "'");
}

// F.grid_sample's mode and padding_mode names, as ATen's enum values.
int64_t gridSampleEnum(const Args& a, size_t i, std::initializer_list<const char*> names, const char* what) {
  std::string name = a.string(i);
  int64_t value = 0;
  for (const char* candidate : names) {
    if (name == candidate) return value;
    ++value;
  }
  a.fail(ErrorKind::Argument, std::string(what) + " must be one of " +
                                  c10::Join(", ", std::vector<std::string>(names.begin(), names.end())) + ", got '" +
                                  name + "'");
}

const Export kExports[] = {
    MMSSL_TENSOR_OP("conv2d",
                    at::conv2d(a.tensor(0), a.tensor(1), a.optTensor(2), a.ints(3), a.ints(4), a.ints(5), a.int64(6))),
    MMSSL_TENSOR_OP("batchNorm",
                    at::batch_norm(a.tensor(0), a.optTensor(1), a.optTensor(2), a.optTensor(3), a.optTensor(4),
                                   a.boolean(5), a.number(6), a.number(7), at::globalContext().userEnabledCuDNN())),
    MMSSL_TENSOR_OP("linear", at::linear(a.tensor(0), a.tensor(1), a.optTensor(2))),
    MMSSL_TENSOR_OP("maxPool2d", at::max_pool2d(a.tensor(0), a.ints(1), a.ints(2), a.ints(3), a.ints(4), a.boolean(5))),
    MMSSL_TENSOR_OP("adaptiveAvgPool2d", at::adaptive_avg_pool2d(a.tensor(0), a.ints(1))),
    MMSSL_TENSOR_OP("dropout", at::dropout(a.tensor(0), a.number(1), a.boolean(2))),
    MMSSL_TENSOR_OP("normalize", normalize(a.tensor(0), a.number(1), a.int64(2), a.number(3))),
    MMSSL_TENSOR_OP("softmax", at::softmax(a.tensor(0), a.int64(1), a.optDtype(2))),
    MMSSL_TENSOR_OP("logSoftmax", at::log_softmax(a.tensor(0), a.int64(1), a.optDtype(2))),
    MMSSL_TENSOR_OP("crossEntropy", at::cross_entropy_loss(a.tensor(0), a.tensor(1), a.optTensor(2), reduction(a, 3),
                                                           a.int64(4), a.number(5))),
    MMSSL_TENSOR_OP("interpolate", interpolate(a)),
    MMSSL_TENSOR_OP("oneHot", at::one_hot(a.tensor(0), a.int64(1))),
    MMSSL_TENSOR_OP("affineGrid", at::affine_grid_generator(a.tensor(0), a.ints(1), a.boolean(2))),
    MMSSL_TENSOR_OP(
        "gridSample",
        at::grid_sampler(a.tensor(0), a.tensor(1), gridSampleEnum(a, 2, {"bilinear", "nearest", "bicubic"}, "mode"),
                         gridSampleEnum(a, 3, {"zeros", "border", "reflection"}, "paddingMode"), a.boolean(4))),
};

}  // namespace

void initFunctional(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
