// The multi-positive InfoNCE loss as a custom autograd function whose forward and backward walk the V x V similarity
// matrix in strips of rows, so the extra memory is O(V d + rows V) instead of O(V²). The definition, and the gradient
// used here, are in lib/loss/reference.ts.
//
// Forward: each strip S = u_r u^T is one GEMM; each row's log-sum-exp over j != i follows in two passes over the row
// (max, then sum of exp), in cache. The positive term needs no V x V work: sum_{p in P(i)} s_ip = u_i . (S_g(i) - u_i)
// / tau, with S_g the sum of group g's embeddings. Only the log-sum-exps are kept for the backward.
// Backward: dL/du = (1/tau) ((A + A^T) u + positive part), with A_ij = a_i exp(s_ij - lse_i), a_i = c_i w_i |P(i)| and
// c_i = grad / anchors for anchors, 0 otherwise. S is symmetric, so a strip of rows r gives both A_r. and (A^T)_r.,
// and (A + A^T)_r. u is one more GEMM: three V x V x d GEMMs in all, as many as autograd spends on the naive loss.
//
// The elementwise passes run as fused CPU loops (float32/64, vectorised, one pass per strip row) or, on other devices,
// as ATen ops on the strip (the same algorithm; `fused = false` selects it on CPU, for checking).
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mmssl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The CPU loops are compiled for AVX-512, AVX2 and baseline x86-64, the best chosen when the addon loads.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MMSSL_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MMSSL_CPU_CLONES
#endif

constexpr double kInf = std::numeric_limits<double>::infinity();
// Rows per strip when the caller leaves it to us: about 4 Mi similarities (16 MiB in float32) whatever V.
constexpr int64_t kStripElements = int64_t{1} << 22;

int64_t stripRows(int64_t v, int64_t requested) {
  return requested > 0 ? std::min(requested, v) : std::clamp<int64_t>(kStripElements / v, 1, v);
}

// ---------------------------------------------------------------------------------------------------------- CPU loops

// exp(x) for x <= 0 (every exponent here is a similarity minus an upper bound of it), in a form GCC vectorises:
// Cody-Waite reduction by ln 2, Cephes' degree-5 polynomial (about 1 ulp), 2^n written into the exponent bits; 0
// below -87, where float32 would go subnormal.
inline float expNonPositive(float x) {
  float clamped = x < -88.f ? -88.f : x;
  float n = (clamped * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round(x / ln 2)
  float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float scale = __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
  return x < -87.f ? 0.f : (p * r * r + r + 1.f) * scale;
}
inline double expNonPositive(double x) { return std::exp(x); }

// One row of a strip, scaled by 1/tau in place: its log-sum-exp (the diagonal already holds -inf), accumulated in Acc.
template <typename T, typename Acc>
MMSSL_CPU_CLONES Acc rowLogSumExp(T* s, int64_t v, T invTau) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < v; ++j) {
    s[j] *= invTau;
    m = s[j] > m ? s[j] : m;
  }
  Acc sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < v; ++j) sum += expNonPositive(s[j] - m);
  return m + std::log(sum);
}

// One row i of a strip, replaced by (A + A^T)_i. = a_i exp(s_ij - lse_i) + a_j exp(s_ij - lse_j).
template <typename T>
MMSSL_CPU_CLONES void rowGradient(T* s, int64_t v, T invTau, T ai, T lsei, const T* a, const T* lse) {
#pragma omp simd
  for (int64_t j = 0; j < v; ++j) {
    T x = s[j] * invTau;
    s[j] = ai * expNonPositive(x - lsei) + a[j] * expNonPositive(x - lse[j]);
  }
}

template <typename T, typename Acc>
void stripLogSumExpCpu(at::Tensor& s, int64_t r0, double tau, at::Tensor& lse) {
  T* rows = s.data_ptr<T>();
  Acc* out = lse.data_ptr<Acc>() + r0;
  int64_t v = s.size(1);
  at::parallel_for(0, s.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = rowLogSumExp<T, Acc>(rows + i * v, v, static_cast<T>(1 / tau));
  });
}

template <typename T>
void stripGradientCpu(at::Tensor& s, int64_t r0, double tau, const at::Tensor& a, const at::Tensor& lse) {
  T* rows = s.data_ptr<T>();
  const T *scale = a.data_ptr<T>(), *bound = lse.data_ptr<T>();
  int64_t v = s.size(1);
  at::parallel_for(0, s.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      rowGradient<T>(rows + i * v, v, static_cast<T>(1 / tau), scale[r0 + i], bound[r0 + i], scale, bound);
  });
}

bool fusedCpu(const at::Tensor& u, bool allowed) {
  return allowed && u.is_cpu() && (u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble);
}

// ------------------------------------------------------------------------------------------------------- strip walk

// Calls epilogue(s, r0) for each block of rows [r0, r0 + s.size(0)) of S = u u^T (unscaled, diagonal at -inf, and
// the columns of absent views at -inf, so that they are in no denominator), the strip's storage reused from block to
// block.
template <typename Epilogue>
void forEachStrip(const at::Tensor& u, int64_t rows, const at::Tensor& absent, Epilogue&& epilogue) {
  int64_t v = u.size(0);
  at::Tensor buffer = at::empty({rows, v}, u.options());
  for (int64_t r0 = 0; r0 < v; r0 += rows) {
    int64_t n = std::min(rows, v - r0);
    at::Tensor s = buffer.narrow(0, 0, n);
    at::mm_out(s, u.narrow(0, r0, n), u.t());
    s.narrow(1, r0, n).diagonal().fill_(-kInf);
    if (absent.defined()) s.masked_fill_(absent, -kInf);
    epilogue(s, r0);
  }
}

// Each row's log-sum-exp of s_ij = u_i . u_j / tau over j != i, in dtype acc.
at::Tensor rowLogSumExps(const at::Tensor& u, double tau, int64_t rows, const at::Tensor& absent, at::ScalarType acc,
                         bool fused) {
  at::Tensor lse = at::empty({u.size(0)}, u.options().dtype(acc));
  forEachStrip(u, rows, absent, [&](at::Tensor& s, int64_t r0) {
    if (!fused) {
      lse.narrow(0, r0, s.size(0)).copy_(at::logsumexp(s.mul_(1 / tau).to(acc), {1}));
    } else if (u.scalar_type() == at::kDouble) {
      stripLogSumExpCpu<double, double>(s, r0, tau, lse);
    } else if (acc == at::kDouble) {
      stripLogSumExpCpu<float, double>(s, r0, tau, lse);
    } else {
      stripLogSumExpCpu<float, float>(s, r0, tau, lse);
    }
  });
  return lse;
}

// Adds (A + A^T) u to out, A_ij = a_i exp(s_ij - lse_i) for j != i; a and lse in u's dtype.
void addSoftmaxGradient(at::Tensor& out, const at::Tensor& u, double tau, int64_t rows, const at::Tensor& absent,
                        const at::Tensor& a, const at::Tensor& lse, bool fused) {
  forEachStrip(u, rows, absent, [&](at::Tensor& s, int64_t r0) {
    int64_t n = s.size(0);
    if (!fused) {
      s.mul_(1 / tau);
      at::Tensor own = at::exp(s - lse.narrow(0, r0, n).unsqueeze(1)).mul_(a.narrow(0, r0, n).unsqueeze(1));
      s = own.add_(at::exp(s - lse.unsqueeze(0)).mul_(a.unsqueeze(0)));
    } else if (u.scalar_type() == at::kDouble) {
      stripGradientCpu<double>(s, r0, tau, a, lse);
    } else {
      stripGradientCpu<float>(s, r0, tau, a, lse);
    }
    out.narrow(0, r0, n).addmm_(s, u);
  });
}

at::Tensor groupSums(const at::Tensor& values, const at::Tensor& inverse, int64_t groups) {
  return at::zeros({groups, values.size(1)}, values.options()).index_add_(0, inverse, values);
}

class InfoNCE : public torch::autograd::Function<InfoNCE> {
 public:
  // u [V, d] contiguous; absent: undefined, or bool [1, V] marking padding rows (non-anchors in groups of their
  // own) to leave out of every denominator; acc is the dtype of the log-sum-exps, positive terms and reductions.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& u, const at::Tensor& groups,
                            const at::Tensor& anchorMask, const c10::optional<at::Tensor>& padding, double tau,
                            bool sum, int64_t rows, bool float64, bool allowFused) {
    at::Tensor absent = padding.value_or(at::Tensor());
    at::ScalarType acc = float64 ? at::kDouble : u.scalar_type();
    bool fused = fusedCpu(u, allowFused);
    auto [unique, inverse, counts] =
        at::_unique2(groups, /*sorted=*/false, /*return_inverse=*/true, /*return_counts=*/true);
    at::Tensor ua = u.to(acc);
    at::Tensor positives = counts.index_select(0, inverse).sub(1).to(acc);
    // A view without a positive can only be a non-anchor (the TypeScript side checks anchors): its weight is 1
    // rather than 1/0, so that its zero terms stay zero instead of 0 * inf = NaN, forward and backward.
    at::Tensor weight = sum ? at::ones_like(positives) : positives.clamp_min(1).reciprocal();
    at::Tensor anchors = anchorMask.to(acc);
    at::Tensor lse = rowLogSumExps(u, tau, rows, absent, acc, fused);
    at::Tensor positiveSim =
        (groupSums(ua, inverse, unique.size(0)).index_select(0, inverse) - ua).mul(ua).sum(1).div(tau);
    at::Tensor loss = weight.mul(positives.mul(lse) - positiveSim).mul(anchors).sum().div(anchors.sum());
    variable_list saved = {u, lse, inverse, positives, weight, anchors};
    if (absent.defined()) saved.push_back(absent);
    ctx->save_for_backward(saved);
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["groups"] = unique.size(0);
    ctx->saved_data["fused"] = fused;
    return loss.to(u.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &u = saved[0], &lse = saved[1], &inverse = saved[2], &positives = saved[3], &weight = saved[4],
                     &anchors = saved[5];
    at::Tensor absent = saved.size() > 6 ? saved[6] : at::Tensor();
    double tau = ctx->saved_data["tau"].toDouble();
    int64_t groups = ctx->saved_data["groups"].toInt();
    at::Tensor ua = u.to(lse.scalar_type());
    at::Tensor cw = anchors.mul(gradOutputs[0].to(lse.scalar_type())).div(anchors.sum()).mul(weight).unsqueeze(1);
    // positive part: -(B + B^T) u = -(c_i w_i (S_g(i) - u_i) + (T_g(i) - c_i w_i u_i)), T_g = sum over g of c w u
    at::Tensor grad = groupSums(ua, inverse, groups).index_select(0, inverse).sub_(ua).mul_(cw);
    at::Tensor weighted = ua.mul(cw);
    grad.add_(groupSums(weighted, inverse, groups).index_select(0, inverse)).sub_(weighted).neg_();
    weighted.reset();
    at::Tensor a = cw.squeeze(1).mul(positives).to(u.scalar_type());
    grad = grad.to(u.scalar_type());
    addSoftmaxGradient(grad, u, tau, ctx->saved_data["rows"].toInt(), absent, a, lse.to(u.scalar_type()),
                       ctx->saved_data["fused"].toBool());
    return {grad.div_(tau), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(),   at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// infoNCE(u, groups, anchorMask, tau, sum, rows, float64, fused, absent): u [V, d] (already normalised if wanted),
// groups int64 [V], anchorMask bool [V]; rows per strip (0: automatic); float64 accumulation; fused CPU loops
// allowed; absent: null or bool [V], padding rows in no denominator. The TypeScript side has checked the batch
// (positives, anchors, options).
Napi::Value infoNCE(Args& a) {
  at::Tensor u = a.tensor(0), groups = a.tensor(1), anchorMask = a.tensor(2);
  c10::optional<at::Tensor> absent;
  if (!a.isAbsent(8)) {
    at::Tensor t = a.tensor(8);
    TORCH_CHECK(t.dim() == 1 && t.size(0) == u.size(0), "infoNCE: expected absent [V], got ", shapeString(t.sizes()));
    absent = t.to(at::kBool).unsqueeze(0);
  }
  TORCH_CHECK(u.dim() == 2 && groups.dim() == 1 && anchorMask.dim() == 1 && groups.size(0) == u.size(0) &&
                  anchorMask.size(0) == u.size(0),
              "infoNCE: expected z [V, d], groups [V] and anchorMask [V], got ", shapeString(u.sizes()), ", ",
              shapeString(groups.sizes()), " and ", shapeString(anchorMask.sizes()));
  TORCH_CHECK(u.size(0) >= 2, "infoNCE: needs at least 2 views, got ", u.size(0));
  int64_t requested = a.int64(5);
  TORCH_CHECK(requested >= 0, "infoNCE: stripRows must be positive, got ", requested);
  return a.wrap(InfoNCE::apply(u.contiguous(), groups.to(at::kLong), anchorMask.to(at::kBool), absent, a.number(3),
                               a.boolean(4), stripRows(u.size(0), requested), a.boolean(6), a.boolean(7)));
}

const Export kExports[] = {
    {"infoNCE", infoNCE},
};

}  // namespace

void initLoss(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
