// The model ops of a Llama-family forward pass besides tree attention: row gathers (embedding), matmul
// (fp16 weights on tensor cores, f32 weights on CUDA cores), RMSNorm, RoPE, SwiGLU, add, softmax and
// log-softmax, argmax and top-k, KV slot copies, and seeded uniform fills. Activations are f32.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/device_primitives.cuh"
#include "kernels/kernels.h"

namespace deft {
namespace {

using device::AllowDependentLaunch;
using device::CopyAsync16;
using device::CopyAsyncCommit;
using device::CopyAsyncWait;
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

template <typename T>
__global__ void RmsNormKernel(const float* x, const T* weight, float* out, half* out16, int width, float epsilon) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  __shared__ float scratch[32];
  const float* row = x + static_cast<size_t>(blockIdx.x) * width;
  float* target = out + static_cast<size_t>(blockIdx.x) * width;
  float sum = 0.0f;
  for (int column = threadIdx.x; column < width; column += blockDim.x) sum += row[column] * row[column];
  sum = BlockSum(sum, scratch);
  const float inverse = 1.0f / sqrtf(sum / static_cast<float>(width) + epsilon);
  for (int column = threadIdx.x; column < width; column += blockDim.x) {
    const float value = row[column] * inverse * ToFloat(weight[column]);
    target[column] = value;
    if (out16 != nullptr) out16[static_cast<size_t>(blockIdx.x) * width + column] = __float2half_rn(value);
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

/** RoPE in place; one block per row, a thread per pair, the angle in double precision. */
__global__ void RopeKernel(float* x, const int* positions, int numHeads, int headDim, double theta, int half,
                           const float* factors) {
  WaitForPrerequisiteGrid();
  AllowDependentLaunch();
  const int pairs = headDim / 2;
  const double position = static_cast<double>(positions[blockIdx.x]);
  float* row = x + static_cast<size_t>(blockIdx.x) * numHeads * headDim;
  const int stride = half != 0 ? 1 : 2;
  const int secondOffset = half != 0 ? pairs : 1;
  for (int pair = threadIdx.x; pair < pairs; pair += blockDim.x) {
    double frequency = pow(theta, -2.0 * pair / headDim);
    if (factors != nullptr) frequency /= static_cast<double>(factors[pair]);
    double sine = 0.0;
    double cosine = 0.0;
    sincos(position * frequency, &sine, &cosine);
    for (int head = 0; head < numHeads; ++head) {
      float* first = row + head * headDim + pair * stride;
      float* second = first + secondOffset;
      const double a = *first;
      const double b = *second;
      *first = static_cast<float>(a * cosine - b * sine);
      *second = static_cast<float>(a * sine + b * cosine);
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
__global__ void __launch_bounds__(kMmaWarps * 32) MatmulMmaKernel(const half* x16, const half* weight, float* out,
                                                                  float* partial, int m, int k, int n,
                                                                  int splitColumns, int clusterReduce) {
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int rowBase = (blockIdx.y * kMmaWarps + warp) * 16;
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
      __shared__ float products[Tiles * 8 * kRows];  // [token][row] of this CTA's tile
#pragma unroll
      for (int tile = 0; tile < Tiles; ++tile) {
        const int token = tile * 8 + 2 * t;
        const int row = warp * 16 + g;
        products[token * kRows + row] = acc[tile][0];
        products[(token + 1) * kRows + row] = acc[tile][1];
        products[token * kRows + row + 8] = acc[tile][2];
        products[(token + 1) * kRows + row + 8] = acc[tile][3];
      }
      namespace cg = cooperative_groups;
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();
      const int ranks = static_cast<int>(cluster.num_blocks());
      const int rank = static_cast<int>(cluster.block_rank());
      constexpr int kElements = Tiles * 8 * kRows;
      const int slice = (kElements + ranks - 1) / ranks;
      const int end = min(kElements, (rank + 1) * slice);
      for (int element = rank * slice + threadIdx.x; element < end; element += blockDim.x) {
        const int token = tokenBase + element / kRows;
        const int row = blockIdx.y * kRows + element % kRows;
        float sum = 0.0f;
        for (int source = 0; source < ranks; ++source) sum += cluster.map_shared_rank(products, source)[element];
        if (token < m && row < n) out[static_cast<size_t>(token) * n + row] = sum;
      }
      cluster.sync();  // no CTA leaves while another still reads its shared memory
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

template <int Tiles>
Status LaunchMma(const MatmulArgs& args, int splits, int splitColumns, cudaStream_t stream) {
  const dim3 grid((args.m + Tiles * 8 - 1) / (Tiles * 8), (args.n + kMmaWarps * 16 - 1) / (kMmaWarps * 16), splits);
  if (grid.y > kMaxGridBlocks || grid.z > kMaxGridBlocks) return Status::Invalid("matmul is too large for one launch");
  const half* x16 = static_cast<const half*>(args.x16);
  const half* weight = static_cast<const half*>(args.weight);
  if (splits > 1 && args.clusterReduce) {
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(kMmaWarps * 32);
    config.stream = stream;
    cudaLaunchAttribute attribute[2];
    attribute[0].id = cudaLaunchAttributeClusterDimension;
    attribute[0].val.clusterDim.x = 1;
    attribute[0].val.clusterDim.y = 1;
    attribute[0].val.clusterDim.z = splits;
    attribute[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[1].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 2;
    DEFT_CUDA_CHECK(cudaLaunchKernelEx(&config, MatmulMmaKernel<Tiles>, x16, weight, args.out, args.partial, args.m,
                                       args.k, args.n, splitColumns, 1));
    return Status::Ok();
  }
  DEFT_RETURN_IF_ERROR(LaunchOp(MatmulMmaKernel<Tiles>, dim3(grid), dim3(kMmaWarps * 32), stream, x16, weight, args.out, args.partial, args.m, args.k,
                                                               args.n, splitColumns, 0));
  if (splits > 1) {
    const size_t count = static_cast<size_t>(args.m) * args.n;
    DEFT_RETURN_IF_ERROR(LaunchOp(SplitSumKernel, dim3(GridFor(count)), dim3(kThreads), stream, args.partial, args.out, count, splits));
  }
  return Status::Ok();
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

Status LaunchRmsNorm(const float* x, const void* weight, KvType weightType, float* out, void* out16, int rows, int width,
                     float epsilon, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  const int threads = RowThreads(width, 512);
  if (weightType == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(RmsNormKernel<half>, dim3(rows), dim3(threads), stream, x, static_cast<const half*>(weight), out, static_cast<half*>(out16), width, epsilon));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(RmsNormKernel<float>, dim3(rows), dim3(threads), stream, x, static_cast<const float*>(weight), out, static_cast<half*>(out16), width, epsilon));
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
  DEFT_RETURN_IF_ERROR(LaunchOp(RopeKernel, dim3(rows), dim3(RowThreads(headDim / 2, 128)), stream, x, positions, numHeads, headDim, theta, half ? 1 : 0,
                                                              factors));
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

MatmulSplit ChooseMatmulSplit(int m, int k, int n, int multiprocessors, size_t maxPartialFloats, int maxSplits) {
  MatmulSplit split;
  const int rowBlocks = (n + kMmaWarps * 16 - 1) / (kMmaWarps * 16);
  // Each warp keeps one register set (4 KB) of weights in flight while it multiplies the other: about
  // 12 warps per multiprocessor cover the memory latency. Splits never go below 512 columns and the
  // partial sums stay within `maxPartialFloats`.
  const int tokenBlocks = (m + 63) / 64;
  const int wantedWarps = 12 * multiprocessors;
  const int warpsPerSplit = tokenBlocks * rowBlocks * kMmaWarps;
  int splits = std::max(1, (wantedWarps + warpsPerSplit - 1) / warpsPerSplit);
  const int columnStep = 32 * kMmaUnroll;
  splits = std::min({splits, maxSplits, std::max(1, k / (4 * columnStep))});
  while (splits > 1 && static_cast<size_t>(splits) * m * n > maxPartialFloats) --splits;
  const int columnBlocks = (k + columnStep - 1) / columnStep;
  const int blocksPerSplit = (columnBlocks + splits - 1) / splits;
  split.splitColumns = blocksPerSplit * columnStep;
  split.splits = (k + split.splitColumns - 1) / split.splitColumns;
  return split;
}

Status LaunchMatmul(const MatmulArgs& args, const MatmulSplit& split, cudaStream_t stream) {
  if (args.m == 0 || args.n == 0) return Status::Ok();
  if (args.x16 != nullptr) {
    const int tiles = (args.m + 7) / 8;
    Status status;
    if (tiles <= 1) {
      status = LaunchMma<1>(args, split.splits, split.splitColumns, stream);
    } else if (tiles <= 2) {
      status = LaunchMma<2>(args, split.splits, split.splitColumns, stream);
    } else if (tiles <= 4) {
      status = LaunchMma<4>(args, split.splits, split.splitColumns, stream);
    } else {
      status = LaunchMma<8>(args, split.splits, split.splitColumns, stream);
    }
    DEFT_RETURN_IF_ERROR(status);
    return Status::Ok();
  }
  const dim3 grid((args.n + kThreads / 32 - 1) / (kThreads / 32), (args.m + 7) / 8);
  if (grid.y > kMaxGridBlocks) return Status::Invalid("matmul has too many rows for one launch");
  if (args.weightType == KvType::kF16) {
    DEFT_RETURN_IF_ERROR(LaunchOp(MatmulSimtKernel<half>, dim3(grid), dim3(kThreads), stream, args.x, static_cast<const half*>(args.weight), args.out, args.m,
                                                    args.k, args.n));
  } else {
    DEFT_RETURN_IF_ERROR(LaunchOp(MatmulSimtKernel<float>, dim3(grid), dim3(kThreads), stream, args.x, static_cast<const float*>(args.weight), args.out, args.m,
                                                    args.k, args.n));
  }
  return Status::Ok();
}

}  // namespace deft
