// The loader's augmentation on CPU: per image, an axis-aligned affine map (a crop box and flips) sampled bilinearly,
// separably. It computes what affine_grid + grid_sampler compute for such maps (bilinear, border padding,
// align_corners false; lib/data/augment.ts uses those on other devices and where gradients are needed), with the
// 1-D weights computed once per output row and column instead of a grid of coordinates per pixel.
#include <ATen/Parallel.h>

#include "common.h"

namespace mmssl {
namespace {

// For each output index along one axis, the two input indices and their weights.
struct Taps {
  std::vector<int64_t> low, high;
  std::vector<double> wLow, wHigh;
};

// Output position k of `out` samples the normalised input point scale * u + offset, u = (2k + 1) / out - 1; the point
// maps to pixel ((p + 1) * in - 1) / 2, clamped to [0, in - 1] (border padding).
Taps taps(int64_t out, int64_t in, double scale, double offset) {
  Taps t{std::vector<int64_t>(out), std::vector<int64_t>(out), std::vector<double>(out), std::vector<double>(out)};
  for (int64_t k = 0; k < out; k++) {
    double u = (2.0 * k + 1.0) / out - 1.0;
    double pixel = ((scale * u + offset + 1.0) * in - 1.0) / 2.0;
    pixel = std::min(std::max(pixel, 0.0), static_cast<double>(in - 1));
    int64_t low = static_cast<int64_t>(std::floor(pixel));
    t.low[k] = low;
    t.high[k] = std::min(low + 1, in - 1);
    t.wHigh[k] = pixel - low;
    t.wLow[k] = 1.0 - t.wHigh[k];
  }
  return t;
}

// Rows first: each output row blends two input rows (a pass over contiguous memory the compiler vectorises), then
// each output pixel blends two values of that blended row.
template <typename T>
void resample(const at::Tensor& x, at::Tensor& out, const std::vector<Taps>& rows, const std::vector<Taps>& cols) {
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh = out.size(2), ow = out.size(3);
  const T* in = x.data_ptr<T>();
  T* o = out.data_ptr<T>();
  at::parallel_for(0, x.size(0) * c, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> blended(w);
    for (int64_t plane = begin; plane < end; plane++) {
      const Taps& r = rows[plane / c];
      const Taps& q = cols[plane / c];
      const T* src = in + plane * h * w;
      T* dst = o + plane * oh * ow;
      for (int64_t i = 0; i < oh; i++) {
        const T* lo = src + r.low[i] * w;
        const T* hi = src + r.high[i] * w;
        const T wl = static_cast<T>(r.wLow[i]), wh = static_cast<T>(r.wHigh[i]);
        for (int64_t k = 0; k < w; k++) blended[k] = wl * lo[k] + wh * hi[k];
        for (int64_t j = 0; j < ow; j++)
          dst[i * ow + j] =
              static_cast<T>(q.wLow[j]) * blended[q.low[j]] + static_cast<T>(q.wHigh[j]) * blended[q.high[j]];
      }
    }
  });
}

// resampleAxisAligned(x [N, C, H, W] float CPU, maps [N * 4]: (scaleX, offsetX, scaleY, offsetY) per image, size)
Napi::Value resampleAxisAligned(Args& a) {
  at::Tensor x = a.tensor(0).contiguous();
  std::vector<double> maps;
  if (!a[1].IsArray()) a.typeError(1, "an array of 4 numbers per image");
  auto array = a[1].As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) maps.push_back(array.Get(i).As<Napi::Number>().DoubleValue());
  std::vector<int64_t> size = a.ints(2);
  if (x.dim() != 4 || !x.is_cpu() || (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble))
    a.fail(ErrorKind::Argument, "resampleAxisAligned: a float32 or float64 CPU tensor [N, C, H, W]");
  if (static_cast<int64_t>(maps.size()) != 4 * x.size(0))
    a.fail(ErrorKind::Argument, "resampleAxisAligned: 4 numbers per image");
  if (size.size() != 2 || size[0] < 1 || size[1] < 1)
    a.fail(ErrorKind::Argument, "resampleAxisAligned: an output [height, width] of positive integers");
  std::vector<Taps> rows, cols;
  for (int64_t k = 0; k < x.size(0); k++) {
    cols.push_back(taps(size[1], x.size(3), maps[4 * k], maps[4 * k + 1]));
    rows.push_back(taps(size[0], x.size(2), maps[4 * k + 2], maps[4 * k + 3]));
  }
  at::Tensor out = at::empty({x.size(0), x.size(1), size[0], size[1]}, x.options());
  if (x.scalar_type() == at::kFloat)
    resample<float>(x, out, rows, cols);
  else
    resample<double>(x, out, rows, cols);
  return a.wrap(out);
}

const Export kExports[] = {
    {"resampleAxisAligned", resampleAxisAligned},
};

}  // namespace

void initAugment(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
