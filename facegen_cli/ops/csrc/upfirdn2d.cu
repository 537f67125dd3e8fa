// upfirdn2d: each block stages the input pixels a tile of outputs needs (for one or more
// planes) in shared memory, then every output sums only the filter taps that land on real
// input pixels (the zero-inserted ones are skipped: a polyphase loop).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>


namespace {

constexpr int kThreads = 256;
constexpr int kMaxTileOutputs = 1024;  // outputs per block before shrinking to fit shared memory
constexpr size_t kSharedBytes = 48 * 1024;
constexpr int kMaxGridZ = 65535;

struct Params {
  int64_t planes;  // N * C
  int64_t channels;
  int in_h, in_w, out_h, out_w;
  int64_t stride_n, stride_c, stride_h, stride_w;  // of x, in elements
  int fh, fw;
  int upx, upy, downx, downy, padx0, pady0;
  bool flip;
  double gain;
  int tile_w, tile_h, tile_planes;  // outputs per block
  int in_tile_w, in_tile_h;         // input pixels per plane staged in shared memory
};

__host__ __device__ __forceinline__ int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return -floor_div(-a, b); }

// How many input pixels along one axis a tile of `tile` outputs can touch.
__host__ __device__ __forceinline__ int input_extent(int tile, int down, int taps, int up) {
  return ((tile - 1) * down + taps - 1) / up + 1;
}

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const float* __restrict__ f,
                                 scalar_t* __restrict__ y, const Params p) {
  using T = at::opmath_type<scalar_t>;
  extern __shared__ __align__(sizeof(double)) unsigned char shared_raw[];
  T* taps = reinterpret_cast<T*>(shared_raw);  // correlation weights, gain folded in
  T* tile = taps + p.fh * p.fw;

  const int tid = threadIdx.x;
  const int ntaps = p.fh * p.fw;
  for (int i = tid; i < ntaps; i += blockDim.x) {
    const int src = p.flip ? i : ntaps - 1 - i;  // a true convolution reads the filter reversed
    taps[i] = static_cast<T>(f[src]) * static_cast<T>(p.gain);
  }

  const int ox0 = blockIdx.x * p.tile_w;
  const int oy0 = blockIdx.y * p.tile_h;
  // The first input pixel under the tile: upsampled coordinate of tap 0 of its first output.
  const int ix_lo = ceil_div(ox0 * p.downx - p.padx0, p.upx);
  const int iy_lo = ceil_div(oy0 * p.downy - p.pady0, p.upy);
  const int in_elems = p.in_tile_w * p.in_tile_h;
  const int out_elems = p.tile_w * p.tile_h;
  const int64_t plane_step = static_cast<int64_t>(gridDim.z) * p.tile_planes;

  for (int64_t plane0 = static_cast<int64_t>(blockIdx.z) * p.tile_planes; plane0 < p.planes; plane0 += plane_step) {
    const int64_t left = p.planes - plane0;
    const int nplanes = left < p.tile_planes ? static_cast<int>(left) : p.tile_planes;
    __syncthreads();  // the taps are written, and the previous planes are done with the tile
    for (int i = tid; i < nplanes * in_elems; i += blockDim.x) {
      const int pl = i / in_elems;
      const int r = i - pl * in_elems;
      const int ty = r / p.in_tile_w;
      const int iy = iy_lo + ty;
      const int ix = ix_lo + (r - ty * p.in_tile_w);
      T v = T(0);
      if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) {
        const int64_t plane = plane0 + pl;
        const int64_t offset = (plane / p.channels) * p.stride_n + (plane % p.channels) * p.stride_c +
                               iy * p.stride_h + ix * p.stride_w;
        v = static_cast<T>(x[offset]);
      }
      tile[i] = v;
    }
    __syncthreads();
    for (int i = tid; i < nplanes * out_elems; i += blockDim.x) {
      const int pl = i / out_elems;
      const int r = i - pl * out_elems;
      const int ty = r / p.tile_w;
      const int oy = oy0 + ty;
      const int ox = ox0 + (r - ty * p.tile_w);
      if (oy >= p.out_h || ox >= p.out_w) continue;
      // Tap k of this output sits on upsampled coordinate s + k; only multiples of `up`
      // hold input pixels, the first of them at tap k0.
      const int sy = oy * p.downy - p.pady0;
      const int sx = ox * p.downx - p.padx0;
      const int ky0 = ((-sy) % p.upy + p.upy) % p.upy;
      const int kx0 = ((-sx) % p.upx + p.upx) % p.upx;
      const T* src = tile + pl * in_elems + ((sy + ky0) / p.upy - iy_lo) * p.in_tile_w + (sx + kx0) / p.upx - ix_lo;
      T acc = T(0);
      for (int ky = ky0; ky < p.fh; ky += p.upy, src += p.in_tile_w) {
        const T* row = src;
        for (int kx = kx0; kx < p.fw; kx += p.upx, ++row) acc += *row * taps[ky * p.fw + kx];
      }
      y[(plane0 + pl) * p.out_h * p.out_w + static_cast<int64_t>(oy) * p.out_w + ox] = static_cast<scalar_t>(acc);
    }
  }
}

int next_pow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

// Output tile per block: up to kMaxTileOutputs outputs, small planes batched together,
// shrunk until the staged input and the taps fit in shared memory.
size_t choose_tiles(Params& p, size_t elem_bytes) {
  p.tile_w = std::min(next_pow2(p.out_w), 32);
  p.tile_h = std::min(next_pow2(p.out_h), kMaxTileOutputs / p.tile_w);
  p.tile_planes = static_cast<int>(std::min<int64_t>(std::max(1, kMaxTileOutputs / (p.tile_w * p.tile_h)), p.planes));
  for (;;) {
    p.in_tile_w = input_extent(p.tile_w, p.downx, p.fw, p.upx);
    p.in_tile_h = input_extent(p.tile_h, p.downy, p.fh, p.upy);
    const size_t bytes =
        (static_cast<size_t>(p.fh) * p.fw + static_cast<size_t>(p.tile_planes) * p.in_tile_w * p.in_tile_h) * elem_bytes;
    if (bytes <= kSharedBytes) return bytes;
    if (p.tile_planes > 1) {
      p.tile_planes /= 2;
    } else if (p.tile_h > 1 && p.tile_h >= p.tile_w) {
      p.tile_h /= 2;
    } else if (p.tile_w > 1) {
      p.tile_w /= 2;
    } else {
      TORCH_CHECK(false, "upfirdn2d: a ", p.fh, "x", p.fw, " filter does not fit in shared memory");
    }
  }
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int upx, int upy, int downx, int downy,
                          int padx0, int padx1, int pady0, int pady1, bool flip, double gain) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  Params p;
  p.planes = x.size(0) * x.size(1);
  p.channels = x.size(1);
  p.in_h = static_cast<int>(x.size(2));
  p.in_w = static_cast<int>(x.size(3));
  p.fh = static_cast<int>(f.size(0));
  p.fw = static_cast<int>(f.size(1));
  const int span_h = p.in_h * upy + pady0 + pady1 - p.fh;
  const int span_w = p.in_w * upx + padx0 + padx1 - p.fw;
  TORCH_CHECK(span_h >= 0 && span_w >= 0, "upfirdn2d: the padded input is smaller than the filter");
  p.out_h = span_h / downy + 1;
  p.out_w = span_w / downx + 1;
  at::Tensor y = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  p.stride_n = x.stride(0);
  p.stride_c = x.stride(1);
  p.stride_h = x.stride(2);
  p.stride_w = x.stride(3);
  p.upx = upx;
  p.upy = upy;
  p.downx = downx;
  p.downy = downy;
  p.padx0 = padx0;
  p.pady0 = pady0;
  p.flip = flip;
  p.gain = gain;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const size_t shared = choose_tiles(p, sizeof(T));
    const dim3 grid((p.out_w + p.tile_w - 1) / p.tile_w, (p.out_h + p.tile_h - 1) / p.tile_h,
                    static_cast<unsigned>(std::min<int64_t>((p.planes + p.tile_planes - 1) / p.tile_planes, kMaxGridZ)));
    upfirdn2d_kernel<scalar_t><<<grid, kThreads, shared, stream>>>(x.const_data_ptr<scalar_t>(),
                                                                   f.const_data_ptr<float>(),
                                                                   y.mutable_data_ptr<scalar_t>(), p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}
