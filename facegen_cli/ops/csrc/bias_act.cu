// Fused bias + activation + gain + clamp and its derivatives, one element per thread step.
//
// The op is memory bound: one read of x (and of the incoming gradient for derivatives), one
// write. The bias index of an element follows from its memory offset, so any dense layout
// (contiguous or channels_last) is processed in place without a copy.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>


namespace {

enum Act : int { kLinear, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish, kNumActs };

// The names the Python side uses; the position is the Act value.
constexpr std::array<const char*, kNumActs> kActNames = {"linear", "relu",  "lrelu",    "tanh", "sigmoid",
                                                         "elu",    "selu",  "softplus", "swish"};

// Constants of torch.nn.functional.selu and the threshold of F.softplus (beta = 1).
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSoftplusThreshold = 20.0;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // beyond that each thread loops over several elements

template <typename T>
__device__ __forceinline__ T sigmoid(T z) {
  return T(1) / (T(1) + std::exp(-z));
}

// act(z), written as torch.nn.functional writes it so NaNs and thresholds behave the same.
template <int A, typename T>
__device__ __forceinline__ T activate(T z, T alpha) {
  if constexpr (A == kLinear) {
    return z;
  } else if constexpr (A == kRelu) {
    return z < T(0) ? T(0) : z;
  } else if constexpr (A == kLrelu) {
    return z > T(0) ? z : z * alpha;
  } else if constexpr (A == kTanh) {
    return std::tanh(z);
  } else if constexpr (A == kSigmoid) {
    return sigmoid(z);
  } else if constexpr (A == kElu) {
    return z > T(0) ? z : std::expm1(z);
  } else if constexpr (A == kSelu) {
    return T(kSeluScale) * (z > T(0) ? z : T(kSeluAlpha) * std::expm1(z));
  } else if constexpr (A == kSoftplus) {
    return z > T(kSoftplusThreshold) ? z : std::log1p(std::exp(z));
  } else {
    return z * sigmoid(z);
  }
}

// act'(z) (order 1) or act''(z) (order 2); at the kinks the side torch's autograd takes.
template <int A, typename T>
__device__ __forceinline__ T derivative(T z, T alpha, int order) {
  const bool second = order == 2;
  if constexpr (A == kLinear) {
    return second ? T(0) : T(1);
  } else if constexpr (A == kRelu) {
    return second || !(z > T(0)) ? T(0) : T(1);
  } else if constexpr (A == kLrelu) {
    return second ? T(0) : (z > T(0) ? T(1) : alpha);
  } else if constexpr (A == kTanh) {
    const T t = std::tanh(z);
    const T d = T(1) - t * t;
    return second ? T(-2) * t * d : d;
  } else if constexpr (A == kSigmoid) {
    const T s = sigmoid(z);
    const T d = s * (T(1) - s);
    return second ? d * (T(1) - T(2) * s) : d;
  } else if constexpr (A == kElu) {
    // At z == 0 torch takes exp(0) for act' but 0 for act'' (its double backward keeps z < 0 only).
    if (second) return z < T(0) ? std::exp(z) : T(0);
    return z > T(0) ? T(1) : std::exp(z);
  } else if constexpr (A == kSelu) {
    if (second) return z < T(0) ? T(kSeluScale * kSeluAlpha) * std::exp(z) : T(0);
    return z > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * std::exp(z);
  } else if constexpr (A == kSoftplus) {
    if (z > T(kSoftplusThreshold)) return second ? T(0) : T(1);
    const T s = sigmoid(z);
    return second ? s * (T(1) - s) : s;
  } else {
    const T s = sigmoid(z);
    const T q = s * (T(1) - s);
    return second ? q * (T(2) + z * (T(1) - T(2) * s)) : s + z * q;
  }
}

template <typename scalar_t>
struct BiasActArgs {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* x;
  const scalar_t* b;   // nullptr: no bias
  const scalar_t* go;  // incoming gradient, orders 1 and 2
  scalar_t* out;
  int64_t n;
  int64_t bias_stride;  // memory stride of the bias dimension
  int64_t bias_size;
  bool index32;  // n fits 32 bits: multiply-shift division instead of 64-bit division
  at::cuda::detail::IntDivider<uint32_t> stride32;
  at::cuda::detail::IntDivider<uint32_t> size32;
  int order;
  T alpha;
  T gain;
  T clamp;  // < 0: no clamp
};

template <typename scalar_t>
__device__ __forceinline__ int64_t bias_index(const BiasActArgs<scalar_t>& p, int64_t i) {
  if (p.index32) return p.size32.mod(p.stride32.div(static_cast<uint32_t>(i)));
  return (i / p.bias_stride) % p.bias_size;
}

template <typename scalar_t, int A>
__global__ void bias_act_kernel(const BiasActArgs<scalar_t> p) {
  using T = at::opmath_type<scalar_t>;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += step) {
    T z = static_cast<T>(p.x[i]);
    if (p.b != nullptr) z += static_cast<T>(p.b[bias_index(p, i)]);
    if (p.order == 0) {
      T v = activate<A>(z, p.alpha) * p.gain;
      if (p.clamp >= T(0)) v = v < -p.clamp ? -p.clamp : (v > p.clamp ? p.clamp : v);
      p.out[i] = static_cast<scalar_t>(v);
      continue;
    }
    T g = static_cast<T>(p.go[i]) * derivative<A>(z, p.alpha, p.order) * p.gain;
    if (p.clamp >= T(0)) {
      // The clamp passes the gradient where the unclamped value lies in [-clamp, clamp].
      const T v = activate<A>(z, p.alpha) * p.gain;
      if (!(v >= -p.clamp && v <= p.clamp)) g = T(0);
    }
    p.out[i] = static_cast<scalar_t>(g);
  }
}

template <typename scalar_t, int A>
void launch(const BiasActArgs<scalar_t>& p, int blocks, cudaStream_t stream) {
  bias_act_kernel<scalar_t, A><<<blocks, kThreads, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

int act_code(const std::string& act) {
  for (int i = 0; i < kNumActs; ++i) {
    if (act == kActNames[i]) return i;
  }
  TORCH_CHECK(false, "bias_act: unknown activation '", act, "'");
  return -1;
}

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& go, int64_t dim,
                         const std::string& act, int64_t order, double alpha, double gain, double clamp) {
  const int code = act_code(act);
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  // Dense tensors keep their layout; anything with gaps or overlaps is packed first.
  const at::Tensor xin = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  at::Tensor out = at::empty_like(xin);
  if (xin.numel() == 0) return out;
  at::Tensor grad;
  if (order > 0) {
    grad = go;
    if (grad.strides() != xin.strides()) grad = at::empty_like(xin).copy_(go);
  }
  const at::Tensor bias = b.defined() ? b.contiguous() : b;

  const int64_t n = xin.numel();
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xin.scalar_type(), "bias_act_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    BiasActArgs<scalar_t> p;
    p.x = xin.const_data_ptr<scalar_t>();
    p.b = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    p.go = grad.defined() ? grad.const_data_ptr<scalar_t>() : nullptr;
    p.out = out.mutable_data_ptr<scalar_t>();
    p.n = n;
    p.bias_stride = bias.defined() ? std::max<int64_t>(xin.stride(dim), 1) : 1;
    p.bias_size = bias.defined() ? xin.size(dim) : 1;
    p.index32 = n <= std::numeric_limits<int32_t>::max();
    if (p.index32) {
      p.stride32 = at::cuda::detail::IntDivider<uint32_t>(static_cast<uint32_t>(p.bias_stride));
      p.size32 = at::cuda::detail::IntDivider<uint32_t>(static_cast<uint32_t>(p.bias_size));
    }
    p.order = static_cast<int>(order);
    p.alpha = static_cast<T>(alpha);
    p.gain = static_cast<T>(gain);
    p.clamp = static_cast<T>(clamp);
    switch (code) {
      case kLinear: launch<scalar_t, kLinear>(p, blocks, stream); break;
      case kRelu: launch<scalar_t, kRelu>(p, blocks, stream); break;
      case kLrelu: launch<scalar_t, kLrelu>(p, blocks, stream); break;
      case kTanh: launch<scalar_t, kTanh>(p, blocks, stream); break;
      case kSigmoid: launch<scalar_t, kSigmoid>(p, blocks, stream); break;
      case kElu: launch<scalar_t, kElu>(p, blocks, stream); break;
      case kSelu: launch<scalar_t, kSelu>(p, blocks, stream); break;
      case kSoftplus: launch<scalar_t, kSoftplus>(p, blocks, stream); break;
      default: launch<scalar_t, kSwish>(p, blocks, stream); break;
    }
  });
  return out;
}
