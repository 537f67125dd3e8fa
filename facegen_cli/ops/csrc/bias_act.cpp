// Python binding of the bias_act kernel: argument checks, then the launcher in bias_act.cu.
#include <torch/extension.h>

#include <optional>
#include <string>

// Defined in bias_act.cu. Order 0: clamp(gain * act(x + b)); orders 1 and 2:
// go * gain * act^(order)(x + b), zero where the clamp was active. `b` and `go` may be
// undefined tensors (no bias; order 0 reads no gradient).
at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& go, int64_t dim,
                         const std::string& act, int64_t order, double alpha, double gain, double clamp);

namespace {

at::Tensor bias_act(const at::Tensor& x, const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& go,
                    int64_t dim, const std::string& act, int64_t order, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
  TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
  at::Tensor bias;
  if (b.has_value() && b->defined()) {
    bias = *b;
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim out of range");
    TORCH_CHECK(bias.device() == x.device(), "bias_act: b must be on the device of x");
    TORCH_CHECK(bias.scalar_type() == x.scalar_type(), "bias_act: b must have the dtype of x");
    TORCH_CHECK(bias.dim() == 1 && bias.numel() == x.size(dim), "bias_act: b must be 1-D with x.shape[dim] entries");
  }
  at::Tensor grad;
  if (order > 0) {
    TORCH_CHECK(go.has_value() && go->defined(), "bias_act: derivatives need the incoming gradient");
    grad = *go;
    TORCH_CHECK(grad.device() == x.device(), "bias_act: the gradient must be on the device of x");
    TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "bias_act: the gradient must have the dtype of x");
    TORCH_CHECK(grad.sizes() == x.sizes(), "bias_act: the gradient must have the shape of x");
  }
  return bias_act_cuda(x, bias, grad, dim, act, order, alpha, gain, clamp);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act, "clamp(gain * act(x + b)) or its first / second derivative times go");
}
