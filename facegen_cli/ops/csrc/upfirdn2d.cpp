// Python binding of the upfirdn2d kernel: argument checks, then the launcher in upfirdn2d.cu.
#include <torch/extension.h>

// Defined in upfirdn2d.cu. x: [N, C, H, W] (any strides); f: float32 [fh, fw] on the device
// of x. Zero-inserts `up`, pads (negative pads crop), convolves with f * gain (correlates if
// flip), keeps every `down`-th pixel; returns a contiguous [N, C, out_h, out_w] of x's dtype.
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int upx, int upy, int downx, int downy,
                          int padx0, int padx1, int pady0, int pady1, bool flip, double gain);

namespace {

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain) {
  TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W]");
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the device of x");
  TORCH_CHECK(f.dim() == 2 && f.scalar_type() == at::kFloat, "upfirdn2d: f must be a 2-D float32 tensor");
  TORCH_CHECK(f.size(0) >= 1 && f.size(1) >= 1, "upfirdn2d: f must not be empty");
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
  return upfirdn2d_cuda(x, f.contiguous(), static_cast<int>(upx), static_cast<int>(upy), static_cast<int>(downx),
                        static_cast<int>(downy), static_cast<int>(padx0), static_cast<int>(padx1),
                        static_cast<int>(pady0), static_cast<int>(pady1), flip, gain);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("upfirdn2d", &upfirdn2d, "zero-insert by up, pad, FIR-filter, keep every down-th pixel");
}
