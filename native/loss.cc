// The multi-positive InfoNCE loss as a custom autograd function whose forward and backward walk the V x V similarity
// matrix in tiles, so the extra memory is O(V d + tile²) instead of O(V²). Written in ATen ops: it runs wherever
// LibTorch does (CPU or CUDA). The definition, and the gradient used here, are in lib/loss/reference.ts.
//
// Forward: each row's log-sum-exp over j != i is accumulated tile by tile with a running maximum. The positive term
// needs no V x V work: sum_{p in P(i)} s_ip = u_i . (S_g(i) - u_i) / tau, with S_g the sum of group g's embeddings.
// Backward: dL/du = (1/tau) (A + A^T + B + B^T) u, with A_ij = c_i W_i p_ij (the softmax part, tiled again) and
// B_ij = -c_i w_i [j in P(i)] (the positive part, by group sums), c_i = grad / anchors for anchors and 0 otherwise.
#include "common.h"

#include <torch/csrc/autograd/custom_function.h>

#include <limits>

namespace mmssl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows [r0, r1) against columns [c0, c1) of s = u u^T / tau, with the diagonal (j == i) at -inf.
at::Tensor similarityTile(const at::Tensor& u, int64_t r0, int64_t r1, int64_t c0, int64_t c1, double tau) {
  at::Tensor s = at::mm(u.slice(0, r0, r1), u.slice(0, c0, c1).t()).div_(tau);
  if (r0 < c1 && c0 < r1) {  // the tile crosses the diagonal
    at::Tensor rows = at::arange(r0, r1, s.options().dtype(at::kLong)).unsqueeze(1);
    at::Tensor cols = at::arange(c0, c1, s.options().dtype(at::kLong)).unsqueeze(0);
    s.masked_fill_(rows.eq(cols), -std::numeric_limits<double>::infinity());
  }
  return s;
}

// Each row's log-sum-exp over j != i, one tile at a time (running max and rescaled sum).
at::Tensor rowLogSumExp(const at::Tensor& u, double tau, int64_t tile) {
  int64_t v = u.size(0);
  at::Tensor lse = at::empty({v}, u.options());
  for (int64_t r0 = 0; r0 < v; r0 += tile) {
    int64_t r1 = std::min(v, r0 + tile);
    at::Tensor m = at::full({r1 - r0}, -std::numeric_limits<double>::infinity(), u.options());
    at::Tensor l = at::zeros({r1 - r0}, u.options());
    for (int64_t c0 = 0; c0 < v; c0 += tile) {
      at::Tensor s = similarityTile(u, r0, r1, c0, std::min(v, c0 + tile), tau);
      at::Tensor mNew = at::maximum(m, std::get<0>(s.max(1)));
      // A row whose tile is all -inf (only its own diagonal so far) keeps m = -inf: exp(-inf - -inf) must not be NaN.
      at::Tensor safe = at::where(mNew.isinf(), at::zeros_like(mNew), mNew);
      l = l.mul(at::exp(m - safe)).add_(at::exp(s - safe.unsqueeze(1)).sum(1));
      m = mNew;
    }
    lse.slice(0, r0, r1).copy_(at::log(l).add_(m));
  }
  return lse;
}

struct Setup {
  at::Tensor inverse;   // each view's group, as 0..G-1
  at::Tensor positives; // |P(i)|
  at::Tensor weight;    // w_i: 1 ('sum') or 1 / |P(i)| ('mean')
  at::Tensor anchors;   // 1 for anchors, 0 otherwise, in u's dtype
};

at::Tensor groupSums(const at::Tensor& values, const at::Tensor& inverse, int64_t groups) {
  return at::zeros({groups, values.size(1)}, values.options()).index_add_(0, inverse, values);
}

class InfoNCE : public torch::autograd::Function<InfoNCE> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& u, const at::Tensor& groups, const at::Tensor& anchorMask,
                            double tau, bool sum, int64_t tile) {
    auto [unique, inverse, counts] = at::_unique2(groups, /*sorted=*/false, /*return_inverse=*/true, /*return_counts=*/true);
    at::Tensor positives = counts.index_select(0, inverse).sub(1).to(u.scalar_type());
    at::Tensor weight = sum ? at::ones_like(positives) : positives.reciprocal();
    at::Tensor anchors = anchorMask.to(u.scalar_type());
    at::Tensor lse = rowLogSumExp(u, tau, tile);
    at::Tensor sums = groupSums(u, inverse, unique.size(0));
    at::Tensor positiveSim = (sums.index_select(0, inverse) - u).mul(u).sum(1).div(tau);
    at::Tensor perView = weight.mul(positives.mul(lse) - positiveSim);
    at::Tensor loss = perView.mul(anchors).sum().div(anchors.sum());
    ctx->save_for_backward({u, lse, inverse, positives, weight, anchors});
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["tile"] = tile;
    ctx->saved_data["groups"] = unique.size(0);
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &u = saved[0], &lse = saved[1], &inverse = saved[2], &positives = saved[3], &weight = saved[4],
                     &anchors = saved[5];
    double tau = ctx->saved_data["tau"].toDouble();
    int64_t tile = ctx->saved_data["tile"].toInt(), v = u.size(0);
    at::Tensor c = anchors.mul(gradOutputs[0]).div(anchors.sum());
    at::Tensor cw = c.mul(weight);
    // positive part: -(B + B^T) u = c_i w_i (S_g(i) - u_i) + (T_g(j) - c_j w_j u_j), T_g = sum over g of c w u
    at::Tensor grad = -(groupSums(u, inverse, ctx->saved_data["groups"].toInt()).index_select(0, inverse) - u)
                           .mul(cw.unsqueeze(1));
    at::Tensor weighted = u.mul(cw.unsqueeze(1));
    grad.sub_(groupSums(weighted, inverse, ctx->saved_data["groups"].toInt()).index_select(0, inverse) - weighted);
    // softmax part, tile by tile: A = diag(c W) P, contributing A u to its rows and A^T u to its columns
    at::Tensor rowScale = cw.mul(positives);
    for (int64_t r0 = 0; r0 < v; r0 += tile) {
      int64_t r1 = std::min(v, r0 + tile);
      for (int64_t c0 = 0; c0 < v; c0 += tile) {
        int64_t c1 = std::min(v, c0 + tile);
        at::Tensor a = similarityTile(u, r0, r1, c0, c1, tau).sub_(lse.slice(0, r0, r1).unsqueeze(1)).exp_()
                           .mul_(rowScale.slice(0, r0, r1).unsqueeze(1));
        grad.slice(0, r0, r1).add_(at::mm(a, u.slice(0, c0, c1)));
        grad.slice(0, c0, c1).add_(at::mm(a.t(), u.slice(0, r0, r1)));
      }
    }
    return {grad.div_(tau), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// infoNCE(u, groups, anchorMask, tau, sum, tile): u [V, d] (already normalised if wanted), groups int64 [V],
// anchorMask bool [V]; the TypeScript side has checked the batch (positives, anchors, finiteness, options).
Napi::Value infoNCE(Args& a) {
  at::Tensor u = a.tensor(0), groups = a.tensor(1), anchorMask = a.tensor(2);
  TORCH_CHECK(u.dim() == 2 && groups.dim() == 1 && anchorMask.dim() == 1 && groups.size(0) == u.size(0) &&
                  anchorMask.size(0) == u.size(0),
              "infoNCE: expected z [V, d], groups [V] and anchorMask [V], got ", shapeString(u.sizes()), ", ",
              shapeString(groups.sizes()), " and ", shapeString(anchorMask.sizes()));
  int64_t tile = a.int64(5);
  TORCH_CHECK(tile > 0, "infoNCE: tileSize must be positive, got ", tile);
  return a.wrap(InfoNCE::apply(u, groups.to(at::kLong), anchorMask.to(at::kBool), a.number(3), a.boolean(4), tile));
}

const Export kExports[] = {
    {"infoNCE", infoNCE},
};

}  // namespace

void initLoss(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
