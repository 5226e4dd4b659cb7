// The model ops of a Llama-family forward pass besides tree attention: row gathers (embedding), matmul
// (fp16 weights on tensor cores, f32 weights on CUDA cores), RMSNorm, RoPE, SwiGLU, add, softmax and
// log-softmax, argmax and top-k, KV slot copies, and seeded uniform fills. Activations are f32.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/device_primitives.cuh"
#include "kernels/wgmma_primitives.cuh"
#include "kernels/kernels.h"

namespace deft {
namespace {

using device::AllowDependentLaunch;
using device::CopyAsync16;
using device::CopyAsyncCommit;
using device::CopyAsyncWait;
using device::LoadMatrixX4;
using device::Mma16816;
using device::SwizzledOffset;
using device::WaitForPrerequisiteGrid;

constexpr int kThreads = 256;
constexpr int kMaxGridBlocks = 65535;

__device__ __forceinline__ float ToFloat(float value) { return value; }
__device__ __forceinline__ float ToFloat(half value) { return __half2float(value); }

/** Sum over a block (every thread gets the result); `scratch` holds one float per warp. */
__device__ float BlockSum(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (int index = 0; index < warps; ++index) total += scratch[index];
  return total;
}

/** Maximum over a block (every thread gets the result). */
__device__ float BlockMax(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[warp] = value;
  __syncthreads();
  float total = -INFINITY;
  for (int index = 0; index < warps; ++index) total = fmaxf(total, scratch[index]);
  return total;
}

/** True when (value, column) ranks before (best, bestColumn): larger first, ties to the smaller column. */
__device__ __forceinline__ bool Better(float value, int column, float best, int bestColumn) {
  if (bestColumn < 0) return true;
  return value > best || (value == best && column < bestColumn);
}

/** True when (value, column) ranks strictly after the previous pick (the next top-k candidates). */
__device__ __forceinline__ bool After(float value, int column, float previous, int previousColumn) {
  if (previousColumn < 0) return true;
  return value < previous || (value == previous && column > previousColumn);
}

/** Best (value, column) over a block; threads pass their own best, every thread gets the winner. */
__device__ void BlockBest(float* value, int* column, float* values, int* columns) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float otherValue = __shfl_xor_sync(0xffffffffu, *value, offset);
    const int otherColumn = __shfl_xor_sync(0xffffffffu, *column, offset);
    if (otherColumn >= 0 && Better(otherValue, otherColumn, *value, *column)) {
      *value = otherValue;
      *column = otherColumn;
    }
  }
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if ((threadIdx.x & 31) == 0) {
    values[warp] = *value;
    columns[warp] = *column;
  }
  __syncthreads();
  float best = 0.0f;
  int bestColumn = -1;
  for (int index = 0; index < warps; ++index) {
    if (columns[index] >= 0 && Better(values[index], columns[index], best, bestColumn)) {
      best = values[index];
      bestColumn = columns[index];
    }
  }
  *value = best;
  *column = bestColumn;
}

// ---------------------------------------------------------------------------------------------
// Gathers and elementwise ops.

template <typename T>
__global__ void GatherRowsKernel(const T* table, const int* rows, float* out, int width) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  const size_t source = static_cast<size_t>(rows[blockIdx.x]) * width;
  float* target = out + static_cast<size_t>(blockIdx.x) * width;
  for (int column = threadIdx.x; column < width; column += blockDim.x) target[column] = ToFloat(table[source + column]);
}

__global__ void AddKernel(const float* a, const float* b, float* out, size_t count) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[index] = a[index] + b[index];
  }
}

__global__ void SwigluKernel(const float* gate, const float* up, float* out, half* out16, size_t count) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[index];
    const float value = g / (1.0f + expf(-g)) * up[index];
    out[index] = value;
    if (out16 != nullptr) out16[index] = __float2half_rn(value);
  }
}

__global__ void ToHalfKernel(const float* x, half* out, size_t count) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[index] = __float2half_rn(x[index]);
  }
}

/** A counter-based generator: value `index` of stream `seed`, uniform in [0, 1). */
__device__ __forceinline__ float UniformAt(unsigned long long seed, size_t index) {
  unsigned long long z = seed * 0x9E3779B97F4A7C15ull + index + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

template <typename T>
__global__ void FillUniformKernel(T* out, size_t count, unsigned long long seed, float low, float high) {
  // No early AllowDependentLaunch: fills write weights, which the matmul starts loading before it waits.
  WaitForPrerequisiteGrid();
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float value = low + (high - low) * UniformAt(seed, index);
    if constexpr (sizeof(T) == 2) {
      out[index] = __float2half_rn(value);
    } else {
      out[index] = value;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Row reductions: one block per row.

constexpr int kNormHeld = 4;  // float4 groups of a row each thread of RmsNormKernel holds in registers

/**
 * RMSNorm of one row per block; with `residual`, first `x += residual` (the sum written back to `x`) and
 * the norm of the sum. Rows up to `kNormHeld * 4 * blockDim.x` wide (width a multiple of 4) stay in
 * registers between the sum of squares and the scaling (one read of `x`); wider ones read it twice.
 */
template <typename T>
__global__ void RmsNormKernel(float* x, const float* residual, const T* weight, float* out, half* out16, int width,
                              float epsilon) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  __shared__ float scratch[32];
  const size_t offset = static_cast<size_t>(blockIdx.x) * width;
  float* row = x + offset;
  const float* added = residual != nullptr ? residual + offset : nullptr;
  float sum = 0.0f;
  if (width % 4 == 0 && width <= kNormHeld * 4 * static_cast<int>(blockDim.x)) {
    float4 held[kNormHeld];
#pragma unroll
    for (int slot = 0; slot < kNormHeld; ++slot) {
      const int column = (threadIdx.x + slot * blockDim.x) * 4;
      if (column < width) {
        float4 value = *reinterpret_cast<const float4*>(row + column);
        if (added != nullptr) {
          const float4 other = *reinterpret_cast<const float4*>(added + column);
          value = make_float4(value.x + other.x, value.y + other.y, value.z + other.z, value.w + other.w);
          *reinterpret_cast<float4*>(row + column) = value;
        }
        held[slot] = value;
        sum += value.x * value.x + value.y * value.y + value.z * value.z + value.w * value.w;
      }
    }
    sum = BlockSum(sum, scratch);
    const float inverse = 1.0f / sqrtf(sum / static_cast<float>(width) + epsilon);
#pragma unroll
    for (int slot = 0; slot < kNormHeld; ++slot) {
      const int column = (threadIdx.x + slot * blockDim.x) * 4;
      if (column < width) {
        const float4 value = held[slot];
        const float4 scaled =
            make_float4(value.x * inverse * ToFloat(weight[column]), value.y * inverse * ToFloat(weight[column + 1]),
                        value.z * inverse * ToFloat(weight[column + 2]), value.w * inverse * ToFloat(weight[column + 3]));
        *reinterpret_cast<float4*>(out + offset + column) = scaled;
        if (out16 != nullptr) {
          uint2 packed;
          packed.x = device::PackHalf2(scaled.x, scaled.y);
          packed.y = device::PackHalf2(scaled.z, scaled.w);
          *reinterpret_cast<uint2*>(out16 + offset + column) = packed;
        }
      }
    }
    return;
  }
  for (int column = threadIdx.x; column < width; column += blockDim.x) {
    float value = row[column];
    if (added != nullptr) {
      value += added[column];
      row[column] = value;
    }
    sum += value * value;
  }
  sum = BlockSum(sum, scratch);
  const float inverse = 1.0f / sqrtf(sum / static_cast<float>(width) + epsilon);
  for (int column = threadIdx.x; column < width; column += blockDim.x) {
    const float value = row[column] * inverse * ToFloat(weight[column]);
    out[offset + column] = value;
    if (out16 != nullptr) out16[offset + column] = __float2half_rn(value);
  }
}

/** Softmax of `x / temperature` (or, with `logarithm`, log-softmax of `x`) of each row. */
__global__ void SoftmaxKernel(const float* x, float* out, int columns, float temperature, int logarithm) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  __shared__ float scratch[32];
  const float* row = x + static_cast<size_t>(blockIdx.x) * columns;
  float* target = out + static_cast<size_t>(blockIdx.x) * columns;
  float maximum = -INFINITY;
  for (int column = threadIdx.x; column < columns; column += blockDim.x) maximum = fmaxf(maximum, row[column]);
  maximum = BlockMax(maximum, scratch);
  const float inverseTemperature = 1.0f / temperature;
  float sum = 0.0f;
  for (int column = threadIdx.x; column < columns; column += blockDim.x) {
    sum += expf((row[column] - maximum) * inverseTemperature);
  }
  sum = BlockSum(sum, scratch);
  if (logarithm != 0) {
    const float normaliser = maximum + logf(sum);
    for (int column = threadIdx.x; column < columns; column += blockDim.x) target[column] = row[column] - normaliser;
  } else {
    const float inverse = 1.0f / sum;
    for (int column = threadIdx.x; column < columns; column += blockDim.x) {
      target[column] = expf((row[column] - maximum) * inverseTemperature) * inverse;
    }
  }
}

/**
 * The `k` best columns of each row, best first: round `r` picks the best column ranking after round
 * `r - 1`'s pick (larger value first, ties to the smaller column). NaN ranks as -infinity and is reported
 * as such, as the host reference does.
 */
__global__ void TopKKernel(const float* x, int columns, int k, int* indices, float* values) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  __shared__ float bestValues[32];
  __shared__ int bestColumns[32];
  const float* row = x + static_cast<size_t>(blockIdx.x) * columns;
  float previous = 0.0f;
  int previousColumn = -1;
  for (int round = 0; round < k; ++round) {
    float best = 0.0f;
    int bestColumn = -1;
    for (int column = threadIdx.x; column < columns; column += blockDim.x) {
      float value = row[column];
      if (value != value) value = -INFINITY;
      if (After(value, column, previous, previousColumn) && Better(value, column, best, bestColumn)) {
        best = value;
        bestColumn = column;
      }
    }
    BlockBest(&best, &bestColumn, bestValues, bestColumns);
    if (threadIdx.x == 0) {
      indices[static_cast<size_t>(blockIdx.x) * k + round] = bestColumn;
      values[static_cast<size_t>(blockIdx.x) * k + round] = best;
    }
    previous = best;
    previousColumn = bestColumn;
  }
}

constexpr int kRopeHeads = 4;  // heads per block of RopeKernel

/**
 * RoPE in place: a block per (row, `kRopeHeads` heads), a thread per pair, the angle in double precision
 * (computed per block: the pow and sincos are cheap next to a serial walk over all heads). Each thread
 * loads its pairs of every head first, then rotates and stores them.
 */
__global__ void RopeKernel(float* x, const int* positions, int numHeads, int headDim, double theta, int half,
                           const float* factors) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  const int pairs = headDim / 2;
  const double position = static_cast<double>(positions[blockIdx.x]);
  const int firstHead = blockIdx.y * kRopeHeads;
  float* row = x + static_cast<size_t>(blockIdx.x) * numHeads * headDim;
  const int stride = half != 0 ? 1 : 2;
  const int secondOffset = half != 0 ? pairs : 1;
  for (int pair = threadIdx.x; pair < pairs; pair += blockDim.x) {
    float a[kRopeHeads];
    float b[kRopeHeads];
#pragma unroll
    for (int head = 0; head < kRopeHeads; ++head) {
      if (firstHead + head < numHeads) {
        const float* first = row + (firstHead + head) * headDim + pair * stride;
        a[head] = first[0];
        b[head] = first[secondOffset];
      }
    }
    double frequency = pow(theta, -2.0 * pair / headDim);
    if (factors != nullptr) frequency /= static_cast<double>(factors[pair]);
    double sine = 0.0;
    double cosine = 0.0;
    sincos(position * frequency, &sine, &cosine);
#pragma unroll
    for (int head = 0; head < kRopeHeads; ++head) {
      if (firstHead + head < numHeads) {
        float* first = row + (firstHead + head) * headDim + pair * stride;
        const double left = a[head];
        const double right = b[head];
        first[0] = static_cast<float>(left * cosine - right * sine);
        first[secondOffset] = static_cast<float>(left * sine + right * cosine);
      }
    }
  }
}

/** Copies slot rows `source[i] -> target[i]` in every region (layer x {K, V}) of a KV store. */
__global__ void CopySlotsKernel(unsigned char* base, size_t regionBytes, int rowHalfWords, const int* source,
                                const int* target, int count) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  uint16_t* region = reinterpret_cast<uint16_t*>(base + blockIdx.y * regionBytes);
  const size_t total = static_cast<size_t>(count) * rowHalfWords;
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t pair = index / rowHalfWords;
    const size_t word = index - pair * rowHalfWords;
    region[static_cast<size_t>(target[pair]) * rowHalfWords + word] =
        region[static_cast<size_t>(source[pair]) * rowHalfWords + word];
  }
}

// ---------------------------------------------------------------------------------------------
// Matmul `out[M, N] = x[M, K] · weight[N, K]ᵀ`.

/** CUDA cores, any K: a warp per weight row and 8 tokens, lanes strided over K, f32 accumulation. */
template <typename W>
__global__ void MatmulSimtKernel(const float* x, const W* weight, float* out, int m, int k, int n) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * (kThreads / 32) + warp;
  if (row >= n) return;
  const int tokenBase = blockIdx.y * 8;
  const int tokens = min(8, m - tokenBase);
  const W* weightRow = weight + static_cast<size_t>(row) * k;
  const float* xBase = x + static_cast<size_t>(tokenBase) * k;
  float sums[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int column = lane; column < k; column += 32) {
    const float w = ToFloat(weightRow[column]);
#pragma unroll
    for (int token = 0; token < 8; ++token) {
      if (token < tokens) sums[token] = fmaf(w, xBase[static_cast<size_t>(token) * k + column], sums[token]);
    }
  }
#pragma unroll
  for (int token = 0; token < 8; ++token) {
    float sum = sums[token];
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0 && token < tokens) out[static_cast<size_t>(tokenBase + token) * n + row] = sum;
  }
}

constexpr int kMmaWarps = 4;     // warps per CTA; each owns 16 weight rows
constexpr int kMmaUnroll = 4;    // 32-column blocks loaded ahead per iteration

__device__ __forceinline__ uint4 LoadStreaming(const half* pointer) {
  uint4 value;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
               : "l"(pointer));
  return value;
}

__device__ __forceinline__ uint4 LoadCached(const half* pointer) {
  return __ldg(reinterpret_cast<const uint4*>(pointer));
}

__device__ __forceinline__ void Mma(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                    unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/** Floats of padding after each token's row of split-K products: lanes of four tokens hit distinct banks. */
constexpr int kProductPad = 4;

/** The matmuls of a group as one launch sees them: row blocks of matmul `i` end at `blockEnd[i]` (grid.y). */
struct MatmulSegments {
  const half* weight[kMaxMatmulGroup];
  float* out[kMaxMatmulGroup];
  int n[kMaxMatmulGroup];
  int blockEnd[kMaxMatmulGroup];
  int count;
};

/** One matmul of a group, and the CTA's row block within it. */
struct MatmulSegment {
  const half* weight;
  float* out;
  int n;
  int block;
};

/** The matmul of row block `block` of a launch (selects, no indexing: the parameters stay in constant memory). */
__device__ __forceinline__ MatmulSegment SelectSegment(const MatmulSegments& segments, int block) {
  MatmulSegment segment{segments.weight[0], segments.out[0], segments.n[0], block};
#pragma unroll
  for (int index = 1; index < kMaxMatmulGroup; ++index) {
    if (index < segments.count && block >= segments.blockEnd[index - 1]) {
      segment = MatmulSegment{segments.weight[index], segments.out[index], segments.n[index],
                              block - segments.blockEnd[index - 1]};
    }
  }
  return segment;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/**
 * Split-K sum of one output tile across a thread-block cluster (the splits of the tile, sm_90): every
 * CTA has left its products (`[Tokens][Rows + kProductPad]` floats, this CTA's shared memory) and adds
 * one slice of the tile over all ranks in split order (distributed shared memory), writing `out` rows
 * `rowBase..` of tokens `tokenBase..`.
 */
template <int Tokens, int Rows>
__device__ void ClusterSumTile(float* products, int tokenBase, int rowBase, int m, int n, float* out) {
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int ranks = static_cast<int>(cluster.num_blocks());
  const int rank = static_cast<int>(cluster.block_rank());
  constexpr int kElements = Tokens * Rows;
  const int slice = (kElements + ranks - 1) / ranks;
  const int end = min(kElements, (rank + 1) * slice);
  for (int element = rank * slice + threadIdx.x; element < end; element += blockDim.x) {
    const int slot = element / Rows * (Rows + kProductPad) + element % Rows;
    const int token = tokenBase + element / Rows;
    const int row = rowBase + element % Rows;
    float sum = 0.0f;
    for (int source = 0; source < ranks; ++source) sum += cluster.map_shared_rank(products, source)[slot];
    if (token < m && row < n) out[static_cast<size_t>(token) * n + row] = sum;
  }
  cluster.sync();  // no CTA leaves while another still reads its shared memory
}
#endif

/**
 * Tensor cores (mma.sync m16n8k16), fp16 weights and fp16 activations (`x16`, converted beforehand),
 * f32 accumulation; K a multiple of 32. The weight is the A operand (16 rows per warp) and the tokens
 * the B operand (8 per tile, `Tiles` tiles per CTA), so decode-sized M wastes no tensor-core rows.
 * Grid: (token blocks of `Tiles * 8` rows, row blocks of 64 weight rows, K splits); the token blocks of
 * one row block are launched side by side, so their weight reads after the first hit L2.
 *
 * No shared memory: within each 32-column block, lane (g, t) loads columns 8t..8t+7 of weight rows g and
 * g + 8 and of token g with one 16-byte load each; the two k16 steps take columns 8t+0..3 and 8t+4..7
 * for their (2t, 2t+1, 2t+8, 2t+9) slots. The dot product sums over K in any order, so this
 * permutation (the same for both operands) is exact. Weights stream past L1 through two register sets
 * of `kMmaUnroll` blocks each: one set's loads are in flight while the other's products run.
 * Activations stay in L1.
 *
 * Split-K over `gridDim.z`, results independent of CTA timing (splits added in order): with
 * `clusterReduce` (sm_90) the splits of a tile form one thread-block cluster, each CTA leaves its
 * products in shared memory and every CTA adds one slice of the tile across the cluster (distributed
 * shared memory), with no second launch; otherwise split `s` writes `partial[s][M][N]` and
 * SplitSumKernel adds them. One split writes `out` directly.
 */
template <int Tiles>
__global__ void __launch_bounds__(kMmaWarps * 32) MatmulMmaKernel(const half* x16, MatmulSegments segments,
                                                                  float* partial, int m, int k, int splitColumns,
                                                                  int clusterReduce) {
  const MatmulSegment segment = SelectSegment(segments, blockIdx.y);
  const half* weight = segment.weight;
  float* out = segment.out;
  const int n = segment.n;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int rowBase = (segment.block * kMmaWarps + warp) * 16;
  const int columnBegin = blockIdx.z * splitColumns;
  const int columnEnd = min(k, columnBegin + splitColumns);
  const half* row0 = weight + static_cast<size_t>(min(rowBase + g, n - 1)) * k + 8 * t;
  const half* row1 = weight + static_cast<size_t>(min(rowBase + g + 8, n - 1)) * k + 8 * t;
  float* target = gridDim.z > 1 ? partial + static_cast<size_t>(blockIdx.z) * m * n : out;
  constexpr int kSetColumns = 32 * kMmaUnroll;
  {
    const int tokenBase = blockIdx.x * Tiles * 8;
    float acc[Tiles][4];
#pragma unroll
    for (int tile = 0; tile < Tiles; ++tile) acc[tile][0] = acc[tile][1] = acc[tile][2] = acc[tile][3] = 0.0f;
    // Up to 32 tokens the warps read activations through L1 (staging them cost 1.3-1.4x at 20 tokens);
    // from 40 on, the CTA stages each set's activations in shared memory once (cp.async, two buffers)
    // and every warp reads them there: at 64 tokens L1 no longer holds them and the warps' own loads
    // cost more L2 traffic than the weights.
    constexpr bool kStaged = Tiles >= 8;
    constexpr int kStageChunks = Tiles * 8 * 16;  // [token][16-byte chunk] of one set: Tiles * 8 x 128 columns
    __shared__ __align__(16) uint4 staged[kStaged ? 2 * kStageChunks : 1];
    const half* tokens[Tiles];
#pragma unroll
    for (int tile = 0; tile < Tiles; ++tile) {
      tokens[tile] = x16 + static_cast<size_t>(min(tokenBase + tile * 8 + g, m - 1)) * k + 8 * t;
    }
    uint4 setA0[kMmaUnroll], setA1[kMmaUnroll], setB0[kMmaUnroll], setB1[kMmaUnroll];
    const auto load = [&](uint4* first, uint4* second, int column) {
#pragma unroll
      for (int step = 0; step < kMmaUnroll; ++step) {
        if (column + 32 * step < columnEnd) {
          first[step] = LoadStreaming(row0 + column + 32 * step);
          second[step] = LoadStreaming(row1 + column + 32 * step);
        }
      }
    };
    // Chunk c of token r sits at c ^ 4(r & 1): the two tokens a quarter-warp reads fall in different banks.
    const auto stage = [&](int buffer, int column) {
      for (int index = threadIdx.x; index < kStageChunks; index += blockDim.x) {
        const int token = index >> 4;
        const int chunk = index & 15;
        const int source = column + chunk * 8;
        const bool valid = source < columnEnd;
        const half* from =
            x16 + static_cast<size_t>(min(tokenBase + token, m - 1)) * k + (valid ? source : columnBegin);
        CopyAsync16(&staged[buffer * kStageChunks + token * 16 + (chunk ^ ((token & 1) << 2))], from, valid);
      }
      CopyAsyncCommit();
    };
    const auto compute = [&](const uint4* first, const uint4* second, int column, int buffer) {
#pragma unroll
      for (int step = 0; step < kMmaUnroll; ++step) {
        if (column + 32 * step < columnEnd) {
#pragma unroll
          for (int tile = 0; tile < Tiles; ++tile) {
            uint4 b;
            if constexpr (kStaged) {
              b = staged[buffer * kStageChunks + (tile * 8 + g) * 16 + ((step * 4 + t) ^ ((g & 1) << 2))];
            } else {
              b = LoadCached(tokens[tile] + column + 32 * step);
            }
            Mma(acc[tile], first[step].x, second[step].x, first[step].y, second[step].y, b.x, b.y);
            Mma(acc[tile], first[step].z, second[step].z, first[step].w, second[step].w, b.z, b.w);
          }
        }
      }
    };
    load(setA0, setA1, columnBegin);
    // The weights never come from the previous kernel (only fills write weights on the device, and they let
    // the next kernel start only once they are done): their first loads overlap its end.
    WaitForPrerequisiteGrid();
    AllowDependentLaunch();
    if constexpr (kStaged) stage(0, columnBegin);
    for (int column = columnBegin; column < columnEnd; column += 2 * kSetColumns) {
      if constexpr (kStaged) stage(1, column + kSetColumns);
      load(setB0, setB1, column + kSetColumns);
      if constexpr (kStaged) {
        CopyAsyncWait<1>();
        __syncthreads();
      }
      compute(setA0, setA1, column, 0);
      if constexpr (kStaged) {
        __syncthreads();  // every warp is done with buffer 0 before it is refilled
        stage(0, column + 2 * kSetColumns);
      }
      load(setA0, setA1, column + 2 * kSetColumns);
      if constexpr (kStaged) {
        CopyAsyncWait<1>();
        __syncthreads();
      }
      compute(setB0, setB1, column + kSetColumns, 1);
      if constexpr (kStaged) __syncthreads();
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (clusterReduce != 0) {
      constexpr int kRows = kMmaWarps * 16;
      constexpr int kStride = kRows + kProductPad;
      __shared__ float products[Tiles * 8 * kStride];  // [token][row] of this CTA's tile
#pragma unroll
      for (int tile = 0; tile < Tiles; ++tile) {
        const int token = tile * 8 + 2 * t;
        const int row = warp * 16 + g;
        products[token * kStride + row] = acc[tile][0];
        products[(token + 1) * kStride + row] = acc[tile][1];
        products[token * kStride + row + 8] = acc[tile][2];
        products[(token + 1) * kStride + row + 8] = acc[tile][3];
      }
      ClusterSumTile<Tiles * 8, kRows>(products, tokenBase, segment.block * kRows, m, n, out);
      return;
    }
#endif
#pragma unroll
    for (int tile = 0; tile < Tiles; ++tile) {
      const int token = tokenBase + tile * 8 + 2 * t;
      const int rowA = rowBase + g;
      const int rowB = rowA + 8;
      if (token < m) {
        if (rowA < n) target[static_cast<size_t>(token) * n + rowA] = acc[tile][0];
        if (rowB < n) target[static_cast<size_t>(token) * n + rowB] = acc[tile][2];
      }
      if (token + 1 < m) {
        if (rowA < n) target[static_cast<size_t>(token + 1) * n + rowA] = acc[tile][1];
        if (rowB < n) target[static_cast<size_t>(token + 1) * n + rowB] = acc[tile][3];
      }
    }
  }
}

constexpr int kTiledRows = 128;   // weight rows per CTA of the tiled kernels
constexpr int kTiledDepth = 64;   // K columns per pipeline stage (128 bytes per row: eight 16-byte chunks)
constexpr int kTiledWarps = 8;
/** Weight elements from which every matmul uses a tiled kernel (fp16: 96 MB). */
constexpr long long kTiledMatmulWeights = 48ll << 20;

/** Pipeline stages of the tiled kernels: two CTAs per multiprocessor at either token tile. */
template <int Tokens>
constexpr int TiledStages() {
  return Tokens >= 128 ? 3 : 4;
}

/**
 * Dynamic shared memory of the tiled kernels: the stages' weight and activation tiles (fp16), plus 1024
 * bytes to round the window up to a 1024-byte boundary (the 128-byte swizzle atom wgmma reads).
 */
template <int Tokens>
constexpr size_t TiledSharedBytes() {
  return static_cast<size_t>(TiledStages<Tokens>()) * (kTiledRows + Tokens) * kTiledDepth * sizeof(half) + 1024;
}

/**
 * The copy ring of a tiled-matmul CTA: `TiledStages` stages of 128 weight rows and `Tokens` tokens x 64
 * columns (fp16, 128 bytes per row, 16-byte chunk c of row r at chunk c ^ (r & 7): ldmatrix reads eight
 * rows without bank conflicts and wgmma reads the layout as its 128-byte swizzle). Each thread copies one
 * chunk column of rows r, r + 32, r + 64, ...: its sources, their validity and its destinations are fixed,
 * a stage only moves the sources 64 columns on.
 */
template <int Tokens>
struct TiledRing {
  static constexpr int kStages = TiledStages<Tokens>();
  static constexpr int kChunks = kTiledDepth / 8;
  static constexpr int kRowsPerPass = kTiledWarps * 32 / kChunks;
  static constexpr int kWeightPasses = kTiledRows / kRowsPerPass;
  static constexpr int kTokenPasses = Tokens / kRowsPerPass;
  static constexpr int kWeightStage = kTiledRows * kTiledDepth;  // halves
  static constexpr int kTokenStage = Tokens * kTiledDepth;

  half* weightTiles;
  half* tokenTiles;
  const half* weight;
  const half* x16;
  int columnBegin;
  int columnEnd;
  int depthTiles;
  int chunk;
  int destination;
  const half* weightSource[kWeightPasses];
  bool weightRowValid[kWeightPasses];
  const half* tokenSource[kTokenPasses];
  bool tokenRowValid[kTokenPasses];

  __device__ __forceinline__ TiledRing(unsigned char* shared, const half* x16Values, const half* weightValues, int m,
                                       int n, int k, int rowBase, int tokenBase, int splitColumns)
      : weightTiles(reinterpret_cast<half*>(shared)),
        tokenTiles(reinterpret_cast<half*>(shared) + kStages * kWeightStage),
        weight(weightValues),
        x16(x16Values) {
    columnBegin = blockIdx.z * splitColumns;
    columnEnd = min(k, columnBegin + splitColumns);
    depthTiles = (columnEnd - columnBegin + kTiledDepth - 1) / kTiledDepth;
    chunk = threadIdx.x % kChunks;
    const int firstRow = threadIdx.x / kChunks;
    destination = SwizzledOffset<kTiledDepth>(firstRow, chunk);  // r & 7 is the same for every pass
#pragma unroll
    for (int pass = 0; pass < kWeightPasses; ++pass) {
      const int row = rowBase + firstRow + pass * kRowsPerPass;
      weightRowValid[pass] = row < n;
      weightSource[pass] = weight + static_cast<size_t>(min(row, n - 1)) * k + columnBegin + chunk * 8;
    }
#pragma unroll
    for (int pass = 0; pass < kTokenPasses; ++pass) {
      const int token = tokenBase + firstRow + pass * kRowsPerPass;
      tokenRowValid[pass] = token < m;
      tokenSource[pass] = x16 + static_cast<size_t>(min(token, m - 1)) * k + columnBegin + chunk * 8;
    }
  }

  /** Copies `Passes` rows (per thread) of stage `tile` into `tiles`; invalid rows and columns are zero-filled. */
  template <int Passes>
  __device__ __forceinline__ void Load(half* tiles, const half* const (&sources)[Passes], const bool (&rowValid)[Passes],
                                       const half* fallback, int tile) {
    const bool inRange = columnBegin + tile * kTiledDepth + chunk * 8 < columnEnd;
#pragma unroll
    for (int pass = 0; pass < Passes; ++pass) {
      const bool valid = inRange && rowValid[pass];
      CopyAsync16(tiles + destination + pass * kRowsPerPass * kTiledDepth,
                  valid ? sources[pass] + tile * kTiledDepth : fallback, valid);
    }
  }

  __device__ __forceinline__ void LoadWeights(int stage, int tile) {
    Load(weightTiles + stage * kWeightStage, weightSource, weightRowValid, weight, tile);
  }

  __device__ __forceinline__ void LoadTokens(int stage, int tile) {
    Load(tokenTiles + stage * kTokenStage, tokenSource, tokenRowValid, x16, tile);
  }

  /**
   * Fills the first stages. The weights never come from the previous kernel: their copies are issued
   * before the wait for it and join the first stage's copy group with its activations.
   */
  __device__ __forceinline__ void Start() {
    for (int stage = 0; stage < kStages - 1; ++stage) {
      if (stage < depthTiles) LoadWeights(stage, stage);
    }
    WaitForPrerequisiteGrid();
    AllowDependentLaunch();
    for (int stage = 0; stage < kStages - 1; ++stage) {
      if (stage < depthTiles) LoadTokens(stage, stage);
      CopyAsyncCommit();
    }
  }

  /**
   * Waits for stage `tile` and issues the copies of the stage `kStages - 1` ahead into the stage every
   * warp finished with (the barrier). `ForAsyncProxy`: the copies are also made visible to wgmma.
   */
  template <bool ForAsyncProxy>
  __device__ __forceinline__ void Advance(int tile) {
    CopyAsyncWait<kStages - 2>();
    if constexpr (ForAsyncProxy) device::FenceProxyAsyncShared();
    __syncthreads();
    const int next = tile + kStages - 1;
    if (next < depthTiles) {
      LoadWeights(next % kStages, next);
      LoadTokens(next % kStages, next);
    }
    CopyAsyncCommit();
  }

  __device__ __forceinline__ const half* WeightStage(int tile) const {
    return weightTiles + (tile % kStages) * kWeightStage;
  }
  __device__ __forceinline__ const half* TokenStage(int tile) const { return tokenTiles + (tile % kStages) * kTokenStage; }
};

/**
 * Where a tiled CTA's results go: with a cluster sum (sm_90, splits > 1), its products in shared memory
 * (`[Tokens][kTiledRows + kProductPad]`, over the finished ring) for ClusterSumTile; otherwise `out`, or
 * split `blockIdx.z`'s partial sums.
 */
template <int Tokens>
struct TiledOutput {
  float* products;
  float* target;
  int m;
  int n;
  int rowBase;
  int tokenBase;
  bool cluster;

  /** Results of rows `row`, `row + 8` x tokens `token`, `token + 1` (CTA-relative; an mma accumulator quad). */
  __device__ __forceinline__ void PutQuad(int row, int token, const float (&values)[4]) const {
    constexpr int kStride = kTiledRows + kProductPad;
    if (cluster) {
      products[token * kStride + row] = values[0];
      products[(token + 1) * kStride + row] = values[1];
      products[token * kStride + row + 8] = values[2];
      products[(token + 1) * kStride + row + 8] = values[3];
      return;
    }
    const int rowA = rowBase + row;
    const int rowB = rowA + 8;
    const int first = tokenBase + token;
    if (first < m) {
      if (rowA < n) target[static_cast<size_t>(first) * n + rowA] = values[0];
      if (rowB < n) target[static_cast<size_t>(first) * n + rowB] = values[2];
    }
    if (first + 1 < m) {
      if (rowA < n) target[static_cast<size_t>(first + 1) * n + rowA] = values[1];
      if (rowB < n) target[static_cast<size_t>(first + 1) * n + rowB] = values[3];
    }
  }

  /** After every PutQuad of the CTA: the cluster sum (no-op otherwise). */
  __device__ __forceinline__ void Finish(float* out) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (cluster) ClusterSumTile<Tokens, kTiledRows>(products, tokenBase, rowBase, m, n, out);
#endif
  }
};

/** The CTA's TiledOutput; `shared` is the ring's window (every warp is done with it before products land). */
template <int Tokens>
__device__ __forceinline__ TiledOutput<Tokens> MakeTiledOutput(unsigned char* shared, const MatmulSegment& segment,
                                                              float* partial, int m, int rowBase, int tokenBase,
                                                              int clusterReduce) {
  TiledOutput<Tokens> output;
  output.products = reinterpret_cast<float*>(shared);
  output.target = gridDim.z > 1 ? partial + static_cast<size_t>(blockIdx.z) * m * segment.n : segment.out;
  output.m = m;
  output.n = segment.n;
  output.rowBase = rowBase;
  output.tokenBase = tokenBase;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  output.cluster = clusterReduce != 0;
#else
  output.cluster = false;
#endif
  return output;
}

/** The dynamic shared-memory window rounded up to a 1024-byte boundary (TiledSharedBytes reserves it). */
__device__ __forceinline__ unsigned char* AlignedWindow(unsigned char* window) {
  const uint32_t address = device::SharedAddress(window);
  return window + ((1024 - (address & 1023)) & 1023);
}

/**
 * Tensor cores for 40+ tokens and large weights (mma.sync): a CTA computes a tile of 128 weight rows x
 * `Tokens` tokens over its K range through a TiledRing; each warp owns 32 weight rows (two m16 A
 * fragments) x Tokens / 2 tokens (n8 B fragments), so every fragment loaded from shared memory feeds two
 * to eight mma.sync. The weight is again the A operand: row-major W and row-major x are both
 * K-contiguous, as m16n8k16.row.col wants. MatmulWgmmaKernel is the same tile on Hopper's warpgroup MMA.
 *
 * Grid: (token blocks, row blocks of the group's matmuls, K splits), token blocks side by side so the
 * second reads the weight from L2. Split-K as MatmulMmaKernel: a cluster sum on sm_90, else partial sums
 * for SplitSumKernel.
 */
template <int Tokens>
__global__ void __launch_bounds__(kTiledWarps * 32) MatmulTiledKernel(const half* x16, MatmulSegments segments,
                                                                       float* partial, int m, int k, int splitColumns,
                                                                       int clusterReduce) {
  constexpr int kWarpTokens = Tokens / 2;
  constexpr int kTokenTiles = kWarpTokens / 8;  // n8 tiles per warp (an even number: ldmatrix.x4 loads two)
  extern __shared__ __align__(16) unsigned char tiledShared[];
  unsigned char* shared = AlignedWindow(tiledShared);
  const MatmulSegment segment = SelectSegment(segments, blockIdx.y);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int warpRow = (warp & 3) * 32;  // 4 warps along the weight rows x 2 along the tokens
  const int warpToken = (warp >> 2) * kWarpTokens;
  const int rowBase = segment.block * kTiledRows;
  const int tokenBase = blockIdx.x * Tokens;
  TiledRing<Tokens> ring(shared, x16, segment.weight, m, segment.n, k, rowBase, tokenBase, splitColumns);

  float acc[2][kTokenTiles][4];
#pragma unroll
  for (int part = 0; part < 2; ++part) {
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile) acc[part][tile][0] = acc[part][tile][1] = acc[part][tile][2] = acc[part][tile][3] = 0.0f;
  }
  ring.Start();
  for (int tile = 0; tile < ring.depthTiles; ++tile) {
    ring.template Advance<false>(tile);
    const half* weightStage = ring.WeightStage(tile);
    const half* tokenStage = ring.TokenStage(tile);
#pragma unroll
    for (int step = 0; step < kTiledDepth / 16; ++step) {
      uint32_t a[2][4];
#pragma unroll
      for (int part = 0; part < 2; ++part) {
        // Lanes 0-15 address rows 0-15 at the step's first 8 columns, lanes 16-31 the next 8: a0..a3 as mma wants.
        const int row = warpRow + part * 16 + (lane & 15);
        LoadMatrixX4(a[part], weightStage + SwizzledOffset<kTiledDepth>(row, step * 2 + (lane >> 4)));
      }
#pragma unroll
      for (int pair = 0; pair < kTokenTiles / 2; ++pair) {
        // Matrices (tokens 0-7, k 0-7), (0-7, k 8-15), (8-15, k 0-7), (8-15, k 8-15): b0, b1 of two n8 tiles.
        const int token = warpToken + pair * 16 + (lane & 7) + ((lane >> 4) << 3);
        uint32_t b[4];
        LoadMatrixX4(b, tokenStage + SwizzledOffset<kTiledDepth>(token, step * 2 + ((lane >> 3) & 1)));
#pragma unroll
        for (int part = 0; part < 2; ++part) {
          Mma16816(acc[part][2 * pair], a[part], b[0], b[1]);
          Mma16816(acc[part][2 * pair + 1], a[part], b[2], b[3]);
        }
      }
    }
  }
  CopyAsyncWait<0>();
  const TiledOutput<Tokens> output = MakeTiledOutput<Tokens>(shared, segment, partial, m, rowBase, tokenBase, clusterReduce);
  if (output.cluster) __syncthreads();  // every warp is done with the ring: it holds the products now
  const int g = lane >> 2;
  const int t = lane & 3;
#pragma unroll
  for (int part = 0; part < 2; ++part) {
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile) output.PutQuad(warpRow + part * 16 + g, warpToken + tile * 8 + 2 * t, acc[part][tile]);
  }
  output.Finish(segment.out);
}

/**
 * MatmulTiledKernel's tile on Hopper's warpgroup MMA (sm_90a): warpgroup w multiplies weight rows
 * 64w .. 64w + 63 (A from registers: each warp ldmatrix-loads its 16 rows, the mma.sync fragment layout)
 * by all `Tokens` tokens of the stage, read by wgmma from shared memory as a K-major B operand (8-row
 * groups 1024 bytes apart, k-step s 32 bytes into the 128-byte rows). One fragment load per warp and
 * k-step instead of six, and no B fragments in registers.
 */
template <int Tokens>
__global__ void __launch_bounds__(kTiledWarps * 32) MatmulWgmmaKernel(const half* x16, MatmulSegments segments,
                                                                       float* partial, int m, int k, int splitColumns,
                                                                       int clusterReduce) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char tiledShared[];
  unsigned char* shared = AlignedWindow(tiledShared);
  const MatmulSegment segment = SelectSegment(segments, blockIdx.y);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int warpRow = (warp >> 2) * 64 + (warp & 3) * 16;  // this warp's 16 rows of its warpgroup's 64
  const int rowBase = segment.block * kTiledRows;
  const int tokenBase = blockIdx.x * Tokens;
  TiledRing<Tokens> ring(shared, x16, segment.weight, m, segment.n, k, rowBase, tokenBase, splitColumns);

  float acc[Tokens / 2];  // the m64n{Tokens} accumulators: quad j holds tokens 8j .. 8j + 7
#pragma unroll
  for (int index = 0; index < Tokens / 2; ++index) acc[index] = 0.0f;
  device::FenceRegisters(acc);
  ring.Start();
  for (int tile = 0; tile < ring.depthTiles; ++tile) {
    ring.template Advance<true>(tile);
    const half* weightStage = ring.WeightStage(tile);
    uint32_t a[kTiledDepth / 16][4];
#pragma unroll
    for (int step = 0; step < kTiledDepth / 16; ++step) {
      LoadMatrixX4(a[step], weightStage + SwizzledOffset<kTiledDepth>(warpRow + (lane & 15), step * 2 + (lane >> 4)));
    }
    const uint64_t descriptor = device::SwizzledDescriptor(device::SharedAddress(ring.TokenStage(tile)), 16, 1024);
    device::WgmmaFence();
#pragma unroll
    for (int step = 0; step < kTiledDepth / 16; ++step) {
      if constexpr (Tokens == 128) {
        device::WgmmaM64N128K16(acc, a[step], descriptor + ((step * 32) >> 4));
      } else {
        device::WgmmaM64N64K16(acc, a[step], descriptor + ((step * 32) >> 4), 1);
      }
    }
    device::WgmmaCommit();
    device::WgmmaWait<0>();
    device::FenceRegisters(acc);
  }
  CopyAsyncWait<0>();
  const TiledOutput<Tokens> output = MakeTiledOutput<Tokens>(shared, segment, partial, m, rowBase, tokenBase, clusterReduce);
  if (output.cluster) __syncthreads();  // every warpgroup is done with the ring: it holds the products now
  const int g = lane >> 2;
  const int t = lane & 3;
#pragma unroll
  for (int quad = 0; quad < Tokens / 8; ++quad) {
    const float values[4] = {acc[4 * quad], acc[4 * quad + 1], acc[4 * quad + 2], acc[4 * quad + 3]};
    output.PutQuad(warpRow + g, quad * 8 + 2 * t, values);
  }
  output.Finish(segment.out);
#endif
}

/** `out[i] = Σ_s partial[s][i]` over `count` values, splits added in order. */
__global__ void SplitSumKernel(const float* partial, float* out, size_t count, int splits) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int split = 0; split < splits; ++split) sum += partial[split * count + index];
    out[index] = sum;
  }
}

int GridFor(size_t count) {
  return static_cast<int>(std::min<size_t>((count + kThreads - 1) / kThreads, 4096));
}

/** Threads for a one-block-per-row kernel over rows of `width`. */
int RowThreads(int width, int maximum) {
  const int rounded = (width + 31) / 32 * 32;
  return std::max(32, std::min(maximum, rounded));
}

/** True when the current device takes programmatic dependent launches (compute capability 9.0+). */
bool DependentLaunchSupported() {
  static int known[64] = {};  // per device ordinal: 0 unknown, 1 no, 2 yes
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (device >= 0 && device < 64 && known[device] != 0) return known[device] == 2;
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  if (device >= 0 && device < 64) known[device] = major >= 9 ? 2 : 1;
  return major >= 9;
}

/**
 * Launches a model-op kernel as a programmatic dependent launch where the device has them: its blocks
 * are scheduled while the previous kernel ends and wait in WaitForPrerequisiteGrid for its writes, so
 * the many small kernels of a decoding step do not each pay a full launch gap.
 */
template <typename... Params, typename... Args>
Status LaunchOp(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = DependentLaunchSupported() ? 1 : 0;
  DEFT_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
  return Status::Ok();
}

/** The group's matmuls for a kernel of `rowsPerBlock` weight rows per CTA; `blocks` gets their row blocks. */
MatmulSegments SegmentsOf(const MatmulArgs& args, int rowsPerBlock, int* blocks) {
  MatmulSegments segments{};
  segments.count = args.count;
  int end = 0;
  for (int index = 0; index < args.count; ++index) {
    segments.weight[index] = static_cast<const half*>(args.weight[index]);
    segments.out[index] = args.out[index];
    segments.n[index] = args.n[index];
    end += (args.n[index] + rowsPerBlock - 1) / rowsPerBlock;
    segments.blockEnd[index] = end;
  }
  *blocks = end;
  return segments;
}

/**
 * Launches a tensor-core matmul kernel over (token blocks, the group's row blocks, splits): a programmatic
 * dependent launch where the device has them, the splits of a tile as one cluster with `clusterReduce`,
 * else followed by SplitSumKernel (one matmul only: LaunchMatmul splits a group up for that).
 */
Status LaunchTensorCoreKernel(void (*kernel)(const half*, MatmulSegments, float*, int, int, int, int),
                              const MatmulArgs& args, const MatmulSplit& split, int tokensPerBlock, int rowsPerBlock,
                              int threads, size_t sharedBytes, cudaStream_t stream) {
  int rowBlocks = 0;
  const MatmulSegments segments = SegmentsOf(args, rowsPerBlock, &rowBlocks);
  const dim3 grid((args.m + tokensPerBlock - 1) / tokensPerBlock, rowBlocks, split.splits);
  if (grid.y > kMaxGridBlocks || grid.z > kMaxGridBlocks) return Status::Invalid("matmul is too large for one launch");
  const bool cluster = split.splits > 1 && args.clusterReduce;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[2];
  int attributes = 0;
  if (DependentLaunchSupported()) {
    attribute[attributes].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[attributes++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster) {
    attribute[attributes].id = cudaLaunchAttributeClusterDimension;
    attribute[attributes].val.clusterDim.x = 1;
    attribute[attributes].val.clusterDim.y = 1;
    attribute[attributes++].val.clusterDim.z = split.splits;
  }
  config.attrs = attribute;
  config.numAttrs = attributes;
  DEFT_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<const half*>(args.x16), segments, args.partial, args.m,
                                     args.k, split.splitColumns, cluster ? 1 : 0));
  if (split.splits > 1 && !cluster) {
    const size_t count = static_cast<size_t>(args.m) * args.n[0];
    DEFT_RETURN_IF_ERROR(LaunchOp(SplitSumKernel, dim3(GridFor(count)), dim3(kThreads), stream, args.partial, args.out[0], count, split.splits));
  }
  return Status::Ok();
}

/** The tiled kernel for a token tile: on warpgroup MMA (sm_90a) or mma.sync. */
template <int Tokens>
auto TiledKernel(bool wgmma) {
  return wgmma ? MatmulWgmmaKernel<Tokens> : MatmulTiledKernel<Tokens>;
}

/** Raises a tiled kernel's dynamic shared-memory limit on the current device (once per device and kernel). */
template <int Tokens>
Status RaiseTiledSharedLimit(bool wgmma) {
  static int raisedFor[2] = {-1, -1};
  int device = 0;
  DEFT_CUDA_CHECK(cudaGetDevice(&device));
  if (raisedFor[wgmma ? 1 : 0] != device) {
    DEFT_CUDA_CHECK(cudaFuncSetAttribute(TiledKernel<Tokens>(wgmma), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(TiledSharedBytes<Tokens>())));
    raisedFor[wgmma ? 1 : 0] = device;
  }
  return Status::Ok();
}

/** RaiseTiledSharedLimit for a token tile of 64 or 128; false when the device refuses. */
bool PrepareTiled(int tokens, bool wgmma) {
  return (tokens == 64 ? RaiseTiledSharedLimit<64>(wgmma) : RaiseTiledSharedLimit<128>(wgmma)).ok();
}

template <int Tokens>
Status LaunchTiled(const MatmulArgs& args, const MatmulSplit& split, cudaStream_t stream) {
  DEFT_RETURN_IF_ERROR(RaiseTiledSharedLimit<Tokens>(split.wgmma));
  return LaunchTensorCoreKernel(TiledKernel<Tokens>(split.wgmma), args, split, Tokens, kTiledRows, kTiledWarps * 32,
                                TiledSharedBytes<Tokens>(), stream);
}

template <int Tiles>
Status LaunchMma(const MatmulArgs& args, const MatmulSplit& split, cudaStream_t stream) {
  return LaunchTensorCoreKernel(MatmulMmaKernel<Tiles>, args, split, Tiles * 8, kMmaWarps * 16, kMmaWarps * 32, 0,
                                stream);
}

/** Matmul `index` of a group as a group of one. */
MatmulArgs SingleOf(const MatmulArgs& args, int index) {
  MatmulArgs single = args;
  single.count = 1;
  single.weight[0] = args.weight[index];
  single.out[0] = args.out[index];
  single.n[0] = args.n[index];
  return single;
}

}  // namespace

Status LaunchGatherRows(const void* table, KvType tableType, const int* rows, int count, float* out, int width,
                        cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  const int threads = RowThreads(width, kThreads);
  if (tableType == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(GatherRowsKernel<half>, dim3(count), dim3(threads), stream, static_cast<const half*>(table), rows, out, width));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(GatherRowsKernel<float>, dim3(count), dim3(threads), stream, static_cast<const float*>(table), rows, out, width));
  }
  return Status::Ok();
}

Status LaunchAdd(const float* a, const float* b, float* out, size_t count, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  DEFT_RETURN_IF_ERROR(LaunchOp(AddKernel, dim3(GridFor(count)), dim3(kThreads), stream, a, b, out, count));
  return Status::Ok();
}

Status LaunchSwiglu(const float* gate, const float* up, float* out, void* out16, size_t count, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  DEFT_RETURN_IF_ERROR(LaunchOp(SwigluKernel, dim3(GridFor(count)), dim3(kThreads), stream, gate, up, out, static_cast<half*>(out16), count));
  return Status::Ok();
}

Status LaunchFillUniform(void* out, KvType type, size_t count, unsigned long long seed, float low, float high,
                         cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  if (type == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(FillUniformKernel<half>, dim3(GridFor(count)), dim3(kThreads), stream, static_cast<half*>(out), count, seed, low, high));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(FillUniformKernel<float>, dim3(GridFor(count)), dim3(kThreads), stream, static_cast<float*>(out), count, seed, low, high));
  }
  return Status::Ok();
}

Status LaunchRmsNorm(float* x, const float* residual, const void* weight, KvType weightType, float* out, void* out16,
                     int rows, int width, float epsilon, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  // Row-in-registers path: a thread per float4 up to 512 threads (kNormHeld groups each beyond that).
  const int threads = width % 4 == 0 ? RowThreads(width / 4, 512) : RowThreads(width, 512);
  if (weightType == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(RmsNormKernel<half>, dim3(rows), dim3(threads), stream, x, residual,
                                  static_cast<const half*>(weight), out, static_cast<half*>(out16), width, epsilon));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(RmsNormKernel<float>, dim3(rows), dim3(threads), stream, x, residual,
                                  static_cast<const float*>(weight), out, static_cast<half*>(out16), width, epsilon));
  }
  return Status::Ok();
}

Status LaunchSoftmax(const float* x, float* out, int rows, int columns, float temperature, bool logarithm,
                     cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  DEFT_RETURN_IF_ERROR(LaunchOp(SoftmaxKernel, dim3(rows), dim3(RowThreads(columns, 1024)), stream, x, out, columns, temperature, logarithm ? 1 : 0));
  return Status::Ok();
}

Status LaunchTopK(const float* x, int rows, int columns, int k, int* indices, float* values, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  DEFT_RETURN_IF_ERROR(LaunchOp(TopKKernel, dim3(rows), dim3(RowThreads(columns, 1024)), stream, x, columns, k, indices, values));
  return Status::Ok();
}

Status LaunchRope(float* x, const int* positions, int rows, int numHeads, int headDim, double theta, bool half,
                  const float* factors, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  const dim3 grid(rows, (numHeads + kRopeHeads - 1) / kRopeHeads);
  DEFT_RETURN_IF_ERROR(LaunchOp(RopeKernel, grid, dim3(RowThreads(headDim / 2, 128)), stream, x, positions, numHeads,
                                headDim, theta, half ? 1 : 0, factors));
  return Status::Ok();
}

Status LaunchCopySlots(void* base, size_t regionBytes, int regions, size_t rowBytes, const int* source,
                       const int* target, int count, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  const int rowHalfWords = static_cast<int>(rowBytes / 2);
  const dim3 grid(GridFor(static_cast<size_t>(count) * rowHalfWords), regions);
  DEFT_RETURN_IF_ERROR(LaunchOp(CopySlotsKernel, dim3(grid), dim3(kThreads), stream, static_cast<unsigned char*>(base), regionBytes, rowHalfWords, source,
                                                 target, count));
  return Status::Ok();
}

Status LaunchToHalf(const float* x, void* out, size_t count, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  DEFT_RETURN_IF_ERROR(LaunchOp(ToHalfKernel, dim3(GridFor(count)), dim3(kThreads), stream, x, static_cast<half*>(out), count));
  return Status::Ok();
}

bool MatmulUsesTensorCores(KvType weightType, int k) { return weightType == KvType::kF16 && k % 32 == 0; }

namespace {

/** The row kernel for `m` tokens (as LaunchMatmul picks it). */
const void* RowKernelFor(int m) {
  const int tiles = (m + 7) / 8;
  if (tiles <= 1) return reinterpret_cast<const void*>(MatmulMmaKernel<1>);
  if (tiles <= 2) return reinterpret_cast<const void*>(MatmulMmaKernel<2>);
  if (tiles <= 3) return reinterpret_cast<const void*>(MatmulMmaKernel<3>);
  if (tiles <= 4) return reinterpret_cast<const void*>(MatmulMmaKernel<4>);
  return reinterpret_cast<const void*>(MatmulMmaKernel<8>);
}

/**
 * How many clusters of `clusterSize` CTAs of `kernel` the device holds at once (cached per device, kernel
 * and size; 0 when the query fails). A split-K launch with more tiles than this runs in several waves.
 */
int ClusterCapacity(const void* kernel, int threads, size_t sharedBytes, int clusterSize) {
  struct Entry {
    int device;
    const void* kernel;
    int clusterSize;
    int clusters;
  };
  static std::vector<Entry> cache;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  for (const Entry& entry : cache) {
    if (entry.device == device && entry.kernel == kernel && entry.clusterSize == clusterSize) return entry.clusters;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(1, 1, clusterSize);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = sharedBytes;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = 1;
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = clusterSize;
  config.attrs = &attribute;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    cudaGetLastError();
    clusters = 0;
  }
  cache.push_back(Entry{device, kernel, clusterSize, clusters});
  return clusters;
}

}  // namespace

MatmulSplit ChooseMatmulSplit(int m, int k, int n, int multiprocessors, size_t maxPartialFloats, bool clusterReduce,
                              int tiledFromRows, bool wgmma) {
  MatmulSplit split;
  const int maxSplits = clusterReduce ? 8 : 16;
  const int tokenTile = m <= 64 ? 64 : 128;
  // The tiled kernel's copy ring streams large weights faster than the row kernel at any row count
  // (H200: 88 % against 72 % of copy bandwidth for 28672 x 4096 at 1-20 rows); below 96 MB of weights
  // the row kernel wins up to 32 rows.
  const bool large = static_cast<long long>(n) * k >= kTiledMatmulWeights;
  if ((m >= tiledFromRows || large) && PrepareTiled(tokenTile, wgmma)) {
    // The tiled kernel: two CTAs per multiprocessor. Splits fill one wave where the tiles alone do not;
    // the cost model is waves x (stages per split + the pipeline's fill), ties to fewer splits, and a
    // split keeps at least 8 stages. Cluster sums count waves in the clusters the device holds at once.
    split.tokenTile = tokenTile;
    split.wgmma = wgmma;
    const void* kernel = split.tokenTile == 64 ? reinterpret_cast<const void*>(TiledKernel<64>(wgmma))
                                               : reinterpret_cast<const void*>(TiledKernel<128>(wgmma));
    const size_t shared = split.tokenTile == 64 ? TiledSharedBytes<64>() : TiledSharedBytes<128>();
    const int tiles = ((m + split.tokenTile - 1) / split.tokenTile) * ((n + kTiledRows - 1) / kTiledRows);
    const int slots = 2 * multiprocessors;
    const int depthTiles = (k + kTiledDepth - 1) / kTiledDepth;
    int bestSplits = 1;
    long long bestCost = -1;
    for (int splits = 1; splits <= maxSplits; ++splits) {
      const int perSplit = (depthTiles + splits - 1) / splits;
      if (splits > 1 && (perSplit < 8 || static_cast<size_t>(splits) * m * n > maxPartialFloats)) break;
      long long waves = (static_cast<long long>(tiles) * splits + slots - 1) / slots;
      if (splits > 1 && clusterReduce) {
        const int clusters = ClusterCapacity(kernel, kTiledWarps * 32, shared, splits);
        if (clusters < 1) continue;
        waves = (tiles + clusters - 1) / clusters;
      }
      const long long cost = waves * (perSplit + 3);
      if (bestCost < 0 || cost < bestCost) {
        bestCost = cost;
        bestSplits = splits;
      }
    }
    split.splitColumns = ((depthTiles + bestSplits - 1) / bestSplits) * kTiledDepth;
    split.splits = (k + split.splitColumns - 1) / split.splitColumns;
    return split;
  }
  const int rowBlocks = (n + kMmaWarps * 16 - 1) / (kMmaWarps * 16);
  // Each warp keeps one register set (4 KB) of weights in flight while it multiplies the other: about
  // 12 warps per multiprocessor cover the memory latency. Splits never go below 512 columns and the
  // partial sums stay within `maxPartialFloats`; a cluster sum keeps every tile's cluster resident at
  // once (a second wave of a few clusters costs as much as the first).
  const int tokenBlocks = (m + 63) / 64;
  const int wantedWarps = 12 * multiprocessors;
  const int warpsPerSplit = tokenBlocks * rowBlocks * kMmaWarps;
  int splits = std::max(1, (wantedWarps + warpsPerSplit - 1) / warpsPerSplit);
  const int columnStep = 32 * kMmaUnroll;
  splits = std::min({splits, maxSplits, std::max(1, k / (4 * columnStep))});
  while (splits > 1 && static_cast<size_t>(splits) * m * n > maxPartialFloats) --splits;
  if (clusterReduce) {
    const void* kernel = RowKernelFor(m);
    while (splits > 1 && tokenBlocks * rowBlocks > ClusterCapacity(kernel, kMmaWarps * 32, 0, splits)) --splits;
  }
  const int columnBlocks = (k + columnStep - 1) / columnStep;
  const int blocksPerSplit = (columnBlocks + splits - 1) / splits;
  split.splitColumns = blocksPerSplit * columnStep;
  split.splits = (k + split.splitColumns - 1) / split.splitColumns;
  return split;
}

Status LaunchMatmul(const MatmulArgs& args, const MatmulSplit& split, cudaStream_t stream) {
  if (args.m == 0 || args.count < 1) return Status::Ok();
  if (args.count > 1 && (args.x16 == nullptr || (split.splits > 1 && !args.clusterReduce))) {
    for (int index = 0; index < args.count; ++index) {
      DEFT_RETURN_IF_ERROR(LaunchMatmul(SingleOf(args, index), split, stream));
    }
    return Status::Ok();
  }
  if (args.x16 != nullptr) {
    const int tiles = (args.m + 7) / 8;
    if (split.tokenTile == 64) return LaunchTiled<64>(args, split, stream);
    if (split.tokenTile == 128) return LaunchTiled<128>(args, split, stream);
    if (tiles <= 1) return LaunchMma<1>(args, split, stream);
    if (tiles <= 2) return LaunchMma<2>(args, split, stream);
    if (tiles <= 3) return LaunchMma<3>(args, split, stream);
    if (tiles <= 4) return LaunchMma<4>(args, split, stream);
    return LaunchMma<8>(args, split, stream);
  }
  const dim3 grid((args.n[0] + kThreads / 32 - 1) / (kThreads / 32), (args.m + 7) / 8);
  if (grid.y > kMaxGridBlocks) return Status::Invalid("matmul has too many rows for one launch");
  if (args.weightType == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(MatmulSimtKernel<half>, dim3(grid), dim3(kThreads), stream, args.x,
                                  static_cast<const half*>(args.weight[0]), args.out[0], args.m, args.k, args.n[0]));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(MatmulSimtKernel<float>, dim3(grid), dim3(kThreads), stream, args.x,
                                  static_cast<const float*>(args.weight[0]), args.out[0], args.m, args.k, args.n[0]));
  }
  return Status::Ok();
}

}  // namespace deft
