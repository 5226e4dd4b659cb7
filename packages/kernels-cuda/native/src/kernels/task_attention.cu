// The task executor of DeFT tree attention (v7-v13). The schedule (src/plan/build-tasks.ts) groups the
// tree's tokens by the exact set of queries that see them, so no kernel here ever reads a mask:
//   - TaskAttentionMmaKernel: one CTA (4 warps) per (task, KV head); a task is up to 64 rows (query x
//     head of the KV head's group) by a range of 64-token KV tiles; fp16 KV on tensor cores
//     (mma.sync m16n8k16, fp32 accumulation), three-stage cp.async ring, one barrier per tile. With
//     fewer than three 16-row query tiles the warps split each KV tile along the tokens (2 or 4 ways)
//     and merge their states through shared memory at the end (decode-style tasks);
//   - TaskAttentionWgmmaKernel (v11, sm_90a only): the same tasks, those of 33+ rows as Hopper warpgroup
//     MMA (wgmma.mma_async from 128-byte-swizzled stages, wgmma_primitives.cuh), smaller ones on the
//     mma.sync bodies above;
//   - TaskAttentionScalarKernel: the same tasks on CUDA cores (f32 KV, any head dim up to 256);
//   - TaskMergeKernel (v13): one warp per (merge query, head): attends to the query's suffix tokens (its
//     small private groups, e.g. speculative leaves) on CUDA cores, then merges the partial states of its
//     tasks in CSR order, several in flight. Launched with programmatic dependent launch: everything the
//     plan determines (offsets, partial slots, q, the suffix) is read before it waits for the attention.
// Scores are pre-multiplied by scale * log2(e): softmax uses exp2 and every lse is base 2. Partial
// buffers belong to the plan, so two plans never share them; there are no counters.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/device_primitives.cuh"
#include "kernels/wgmma_primitives.cuh"
#include "kernels/kernels.h"

namespace deft {
namespace {

using namespace device;  // NOLINT: the primitives of device_primitives.cuh

constexpr int kTaskWarps = 4;
constexpr int kTaskThreads = kTaskWarps * 32;
/** Tokens per staged KV tile (K and V of one KV head: 32 KB per stage at head dim 128). */
constexpr int kTaskTileTokens = 64;
/** Ring stages: two tiles in flight while one is computed (96.5 KB of shared memory at head dim 128). */
constexpr int kTaskStages = 3;
/** CTAs per multiprocessor the launch bounds aim for (shared memory allows two). */
constexpr int kTaskBlocksPerMultiprocessor = 2;
/** Largest head dim of the CUDA-core paths (values per lane). */
constexpr int kMaxPerLane = 8;

/** 2^x with the hardware approximation, denormal results flushed to zero (ex2.approx.ftz); 2^-inf = 0. */
__device__ __forceinline__ float FastExp2(float x) {
  float result;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(result) : "f"(x));
  return result;
}

template <int Dim>
struct TaskLayout {
  static constexpr int kChunks = Dim / 8;  // 16-byte chunks per K / V row
  static constexpr int kTileHalves = kTaskTileTokens * Dim;
  static constexpr int kStageHalves = 2 * kTileHalves;  // K tile then V tile
  // Loader: thread t copies chunk (t + 128 * step) % kChunks of row (t + 128 * step) / kChunks, one slot
  // index per copy (eight per tile at head dim 128).
  static constexpr int kCopiesPerThread = kTaskTileTokens * kChunks / kTaskThreads;
  static constexpr int kScratchRowFloats = Dim + 4;
  static constexpr int kScratchWarpFloats = 16 * kScratchRowFloats + 32;  // o rows, then m[16], l[16]
  static constexpr size_t kRingBytes = static_cast<size_t>(kTaskStages) * kStageHalves * sizeof(half);
  static constexpr size_t kScratchBytes = static_cast<size_t>(kTaskWarps) * kScratchWarpFloats * sizeof(float);
  static constexpr size_t kTargetsOffset = kRingBytes > kScratchBytes ? kRingBytes : kScratchBytes;
  static constexpr size_t kSharedBytes = kTargetsOffset + kTaskWarps * 16 * sizeof(int2);
};

/** Slot indices of the token rows one thread copies for one tile (-1: past the task's end). */
template <int Dim>
struct TaskTileSlots {
  int slot[TaskLayout<Dim>::kCopiesPerThread];
};

template <int Dim>
__device__ __forceinline__ void FetchTaskSlots(const int* slots, int numTokens, int tile, TaskTileSlots<Dim>& out) {
  using Layout = TaskLayout<Dim>;
#pragma unroll
  for (int step = 0; step < Layout::kCopiesPerThread; ++step) {
    const int row = (threadIdx.x + step * kTaskThreads) / Layout::kChunks;
    const int token = tile * kTaskTileTokens + row;
    out.slot[step] = token < numTokens ? __ldg(slots + token) : -1;
  }
}

/**
 * Offset (halves) of 16-byte chunk `chunk` of token row `row` in a staged K or V tile: the mma.sync layout
 * ([64][Dim], chunk ^ (row & 7)), or with `Wgmma` the 128-byte-swizzled blocks of wgmma_primitives.cuh
 * (Dim / 64 blocks of [64][64], chunk % 8 ^ (row & 7) within the block).
 */
template <int Dim, bool Wgmma>
__device__ __forceinline__ int StagedOffset(int row, int chunk) {
  if constexpr (Wgmma) {
    return (chunk >> 3) * (kTaskTileTokens * 64) + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
  } else {
    return SwizzledOffset<Dim>(row, chunk);
  }
}

/** Issues the 16-byte copies of one tile's K and V rows into a ring stage (rows past the end are zero-filled). */
template <int Dim, bool Wgmma>
__device__ __forceinline__ void IssueTaskTile(const TaskParams& params, int kvHead, half* stage,
                                              const TaskTileSlots<Dim>& slots) {
  using Layout = TaskLayout<Dim>;
  const half* keys = static_cast<const half*>(params.k) + kvHead * Dim;
  const half* values = static_cast<const half*>(params.v) + kvHead * Dim;
  const int slotStride = params.numKvHeads * Dim;  // halves per slot row
#pragma unroll
  for (int step = 0; step < Layout::kCopiesPerThread; ++step) {
    const int index = threadIdx.x + step * kTaskThreads;
    const int row = index / Layout::kChunks;
    const int chunk = index % Layout::kChunks;
    const int slot = slots.slot[step];
    // One 32 x 32 -> 64-bit multiply-add per row; a row past the end reads slot 0's address, zero-filled.
    const long long offset = static_cast<long long>(max(slot, 0)) * slotStride + chunk * 8;
    const int sharedOffset = StagedOffset<Dim, Wgmma>(row, chunk);
    CopyAsync16(stage + sharedOffset, keys + offset, slot >= 0);
    CopyAsync16(stage + Layout::kTileHalves + sharedOffset, values + offset, slot >= 0);
  }
}

/**
 * Per-lane ldmatrix offsets (halves) into a swizzled [rows, Dim] tile. The swizzle XORs the 16-byte
 * chunk index with row & 7, and every ldmatrix row group starts at a multiple of 8 rows, so row & 7 is a
 * lane constant and chunk ^ (row & 7) = 8 * (chunk / 8) + ((chunk % 8) ^ (row & 7)): four offsets per lane
 * (chunk % 8 = 2 * j + lane bit, j = 0..3) cover every k-step, the rest is compile-time immediates.
 * `key[j]`: K fragments of k-step 4q + j at tile row 0; `value[j]`: V fragments of columns 16 * (4q + j).
 */
struct LaneOffsets {
  int key[4];
  int value[4];
};

template <int Dim>
__device__ __forceinline__ LaneOffsets ComputeLaneOffsets(int lane) {
  LaneOffsets offsets;
  const int r7 = lane & 7;
  const int keyRow = (lane & 7) + ((lane >> 4) << 3);
  const int keyBit = (lane >> 3) & 1;
  const int valueRow = (lane & 7) + (((lane >> 3) & 1) << 3);
  const int valueBit = lane >> 4;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    offsets.key[j] = keyRow * Dim + (((2 * j + keyBit) ^ r7) << 3);
    offsets.value[j] = valueRow * Dim + (((2 * j + valueBit) ^ r7) << 3);
  }
  return offsets;
}

/**
 * Online softmax of one warp's 16 rows over `NTiles` x 8 scores that start at tile row `firstRow`: tokens
 * at or past `tokensLeft` (the task's last tile: zero-filled rows) masked, running max and sum updated in
 * base 2, `o` rescaled only when some row's maximum rose (warp vote), scores replaced by exponentials.
 */
template <int Dim, int NTiles>
__device__ __forceinline__ void SoftmaxUpdate(float (&scores)[NTiles][4], float (&o)[Dim / 8][4], float (&rowMax)[2],
                                              float (&rowSum)[2], int tokensLeft, int firstRow, int lane) {
  const int column = (lane & 3) * 2;
  if (firstRow + NTiles * 8 > tokensLeft) {
#pragma unroll
    for (int tile = 0; tile < NTiles; ++tile) {
#pragma unroll
      for (int element = 0; element < 4; ++element) {
        if (firstRow + tile * 8 + column + (element & 1) >= tokensLeft) scores[tile][element] = -INFINITY;
      }
    }
  }
  float newMax[2] = {rowMax[0], rowMax[1]};
#pragma unroll
  for (int tile = 0; tile < NTiles; ++tile) {
    newMax[0] = fmaxf(newMax[0], fmaxf(scores[tile][0], scores[tile][1]));
    newMax[1] = fmaxf(newMax[1], fmaxf(scores[tile][2], scores[tile][3]));
  }
  float base[2];
  float correction[2];
  bool rose = false;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    newMax[half] = fmaxf(newMax[half], __shfl_xor_sync(0xffffffffu, newMax[half], 1));
    newMax[half] = fmaxf(newMax[half], __shfl_xor_sync(0xffffffffu, newMax[half], 2));
    // Empty-state guard: a row that has seen no key keeps max -inf; subtract 0 then, so that
    // exp2(-inf - base) is 0 rather than NaN. (Every step has a valid token, so this is defensive.)
    base[half] = newMax[half] == -INFINITY ? 0.0f : newMax[half];
    correction[half] = FastExp2(rowMax[half] - base[half]);  // exactly 1 when the max did not rise
    rose |= newMax[half] > rowMax[half];
    rowMax[half] = newMax[half];
    rowSum[half] *= correction[half];
  }
  if (__any_sync(0xffffffffu, rose)) {
#pragma unroll
    for (int tile = 0; tile < Dim / 8; ++tile) {
      o[tile][0] *= correction[0];
      o[tile][1] *= correction[0];
      o[tile][2] *= correction[1];
      o[tile][3] *= correction[1];
    }
  }
#pragma unroll
  for (int tile = 0; tile < NTiles; ++tile) {
    scores[tile][0] = FastExp2(scores[tile][0] - base[0]);
    scores[tile][1] = FastExp2(scores[tile][1] - base[0]);
    scores[tile][2] = FastExp2(scores[tile][2] - base[1]);
    scores[tile][3] = FastExp2(scores[tile][3] - base[1]);
    rowSum[0] += scores[tile][0] + scores[tile][1];
    rowSum[1] += scores[tile][2] + scores[tile][3];
  }
}

/** The A fragment (16 rows x 16 tokens, fp16) of probabilities for tokens 16 * step .. of `scores`. */
template <int NTiles>
__device__ __forceinline__ void PackProbabilities(const float (&scores)[NTiles][4], int step, uint32_t (&out)[4]) {
  out[0] = PackHalf2(scores[2 * step][0], scores[2 * step][1]);
  out[1] = PackHalf2(scores[2 * step][2], scores[2 * step][3]);
  out[2] = PackHalf2(scores[2 * step + 1][0], scores[2 * step + 1][1]);
  out[3] = PackHalf2(scores[2 * step + 1][2], scores[2 * step + 1][3]);
}

/**
 * One warp, 16 rows, `Step` tokens of a staged tile starting at tile row `firstRow` (mma.sync m16n8k16):
 * S = Q K^T, the online softmax, O += P V.
 */
template <int Dim, int Step>
__device__ __forceinline__ void TaskStep(const half* stageK, const half* stageV, int tokensLeft, int firstRow,
                                         const uint32_t (&queryFragments)[Dim / 16][4], float (&o)[Dim / 8][4],
                                         float (&rowMax)[2], float (&rowSum)[2], const LaneOffsets& lanes, int lane) {
  constexpr int kNTiles = Step / 8;
  if (firstRow >= tokensLeft) return;  // warp-uniform: nothing of this step exists
  float scores[kNTiles][4];
#pragma unroll
  for (int tile = 0; tile < kNTiles; ++tile) {
#pragma unroll
    for (int element = 0; element < 4; ++element) scores[tile][element] = 0.0f;
  }
#pragma unroll
  for (int step = 0; step < Dim / 16; ++step) {
#pragma unroll
    for (int tile = 0; tile < kNTiles; tile += 2) {
      uint32_t keyFragments[4];
      LoadMatrixX4(keyFragments, stageK + (firstRow + tile * 8) * Dim + lanes.key[step & 3] + (step >> 2) * 64);
      Mma16816(scores[tile], queryFragments[step], keyFragments[0], keyFragments[1]);
      Mma16816(scores[tile + 1], queryFragments[step], keyFragments[2], keyFragments[3]);
    }
  }
  SoftmaxUpdate<Dim, kNTiles>(scores, o, rowMax, rowSum, tokensLeft, firstRow, lane);
#pragma unroll
  for (int step = 0; step < Step / 16; ++step) {
    uint32_t probabilities[4];
    PackProbabilities<kNTiles>(scores, step, probabilities);
    const half* rows = stageV + (firstRow + step * 16) * Dim;
#pragma unroll
    for (int tile = 0; tile < Dim / 8; tile += 2) {
      uint32_t valueFragments[4];
      LoadMatrixX4Transposed(valueFragments, rows + lanes.value[(tile >> 1) & 3] + (tile >> 3) * 64);
      Mma16816(o[tile], probabilities, valueFragments[0], valueFragments[1]);
      Mma16816(o[tile + 1], probabilities, valueFragments[2], valueFragments[3]);
    }
  }
}

/**
 * Loads one warp's 16 query rows (scaled by scale * log2(e), fp16) into mma A fragments and, from lanes
 * 0-15, writes each row's target (output row, partial row or -1) to `targets[16]`. Lane r loads row
 * r's entry once; rows are broadcast with shuffles; every Q load of the tile is independent.
 */
template <int Dim>
__device__ __forceinline__ void LoadTaskQuery(const TaskParams& params, int rowStart, int rowCount, int kvHead,
                                              int queryTile, uint32_t (&fragments)[Dim / 16][4], int2* targets,
                                              bool writeTargets, int lane) {
  const int myRow = lane & 15;
  const int taskRow = queryTile * 16 + myRow;
  long long queryOffset = -1;
  int2 target = make_int2(-1, -1);
  if (taskRow < rowCount) {
    const int2 entry = __ldg(reinterpret_cast<const int2*>(params.taskRows) + rowStart + taskRow);
    const int shift = kvHead * params.group;
    queryOffset = static_cast<long long>(entry.x + shift) * Dim;
    target = make_int2(entry.x + shift, entry.y < 0 ? -1 : entry.y + shift);
  }
  if (writeTargets && lane < 16) targets[myRow] = target;
  const int group = lane >> 2;
  const int column = (lane & 3) * 2;
  const long long offsetLow = __shfl_sync(0xffffffffu, queryOffset, group);
  const long long offsetHigh = __shfl_sync(0xffffffffu, queryOffset, group + 8);
  const float scale = params.scaleLog2;
  const float2 zero = make_float2(0.0f, 0.0f);
#pragma unroll
  for (int step = 0; step < Dim / 16; ++step) {
    const int first = step * 16 + column;
    const float2 a0 = offsetLow >= 0 ? __ldg(reinterpret_cast<const float2*>(params.q + offsetLow + first)) : zero;
    const float2 a1 = offsetHigh >= 0 ? __ldg(reinterpret_cast<const float2*>(params.q + offsetHigh + first)) : zero;
    const float2 a2 = offsetLow >= 0 ? __ldg(reinterpret_cast<const float2*>(params.q + offsetLow + first + 8)) : zero;
    const float2 a3 = offsetHigh >= 0 ? __ldg(reinterpret_cast<const float2*>(params.q + offsetHigh + first + 8)) : zero;
    fragments[step][0] = PackHalf2(a0.x * scale, a0.y * scale);
    fragments[step][1] = PackHalf2(a1.x * scale, a1.y * scale);
    fragments[step][2] = PackHalf2(a2.x * scale, a2.y * scale);
    fragments[step][3] = PackHalf2(a3.x * scale, a3.y * scale);
  }
}

/** Writes one finished row: `o` divided by `sum` to the output or a partial slot, and the lse of a partial. */
__device__ __forceinline__ float* TargetRow(const TaskParams& params, int2 target, int dim) {
  return target.y < 0 ? params.out + static_cast<size_t>(target.x) * dim
                      : params.partialO + static_cast<size_t>(target.y) * dim;
}

/**
 * Starts a task's ring: the slots of the first kTaskStages tiles in one batch, then the copies of the
 * first kTaskStages - 1 (`next` returns the slots of the tile the loop issues first).
 */
template <int Dim, bool Wgmma>
__device__ __forceinline__ void StartTaskRing(const TaskParams& params, int kvHead, half* ring, const int* slots,
                                              int numTokens, int numTiles, TaskTileSlots<Dim>& next) {
  static_assert(kTaskStages == 3, "the prologue fills two stages");
  TaskTileSlots<Dim> first;
  TaskTileSlots<Dim> second;
  FetchTaskSlots<Dim>(slots, numTokens, 0, first);
  FetchTaskSlots<Dim>(slots, numTokens, 1, second);
  FetchTaskSlots<Dim>(slots, numTokens, 2, next);
  IssueTaskTile<Dim, Wgmma>(params, kvHead, ring, first);
  CopyAsyncCommit();
  if (numTiles > 1) IssueTaskTile<Dim, Wgmma>(params, kvHead, ring + TaskLayout<Dim>::kStageHalves, second);
  CopyAsyncCommit();
}

/**
 * The top of the tile loop: waits for tile `tile`'s copies, one barrier (every thread's copies are visible
 * and every warp is done with the previous tile's stage), then refills that stage with the tile
 * kTaskStages - 1 ahead and fetches the slots of the one after. With `Wgmma` the copies are also ordered
 * before the asynchronous proxy's reads.
 */
template <int Dim, bool Wgmma>
__device__ __forceinline__ void AdvanceTaskRing(const TaskParams& params, int kvHead, half* ring, const int* slots,
                                                int numTokens, int numTiles, int tile, TaskTileSlots<Dim>& next) {
  CopyAsyncWait<kTaskStages - 2>();
  if constexpr (Wgmma) FenceProxyAsyncShared();
  __syncthreads();
  const int issue = tile + kTaskStages - 1;
  if (issue < numTiles) {
    IssueTaskTile<Dim, Wgmma>(params, kvHead, ring + (issue % kTaskStages) * TaskLayout<Dim>::kStageHalves, next);
  }
  CopyAsyncCommit();
  if (issue + 1 < numTiles) FetchTaskSlots<Dim>(slots, numTokens, issue + 1, next);
}

/** An empty online-softmax state of a warp's 16 rows: output 0, maximum -inf, sum 0. */
template <int Dim>
__device__ __forceinline__ void ResetRowState(float (&o)[Dim / 8][4], float (&rowMax)[2], float (&rowSum)[2]) {
#pragma unroll
  for (int tile = 0; tile < Dim / 8; ++tile) {
#pragma unroll
    for (int element = 0; element < 4; ++element) o[tile][element] = 0.0f;
  }
  rowMax[0] = rowMax[1] = -INFINITY;
  rowSum[0] = rowSum[1] = 0.0f;
}

/** Sums each row's softmax denominator over the lane quad that holds the row. */
__device__ __forceinline__ void ReduceRowSums(float (&rowSum)[2]) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    rowSum[half] += __shfl_xor_sync(0xffffffffu, rowSum[half], 1);
    rowSum[half] += __shfl_xor_sync(0xffffffffu, rowSum[half], 2);
  }
}

/** Writes a warp's 16 finished rows (`targets[16]`; x < 0: padding) from its mma-layout registers. */
template <int Dim>
__device__ __forceinline__ void WriteWarpRows(const TaskParams& params, const int2* targets, const float (&o)[Dim / 8][4],
                                              const float (&rowMax)[2], const float (&rowSum)[2], int lane) {
  const int column = (lane & 3) * 2;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = (lane >> 2) + half * 8;
    const int2 target = targets[row];
    if (target.x < 0) continue;
    float* destination = TargetRow(params, target, Dim);
    const float sum = rowSum[half];
    const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int tile = 0; tile < Dim / 8; ++tile) {
      *reinterpret_cast<float2*>(destination + tile * 8 + column) =
          make_float2(o[tile][2 * half] * inverse, o[tile][2 * half + 1] * inverse);
    }
    if (target.y >= 0 && (lane & 3) == 0) {
      params.partialLse[target.y] = sum > 0.0f ? rowMax[half] + log2f(sum) : -INFINITY;
    }
  }
}

/**
 * The body of the mma.sync task kernel for `Split` warps per query tile: Split 1 (3-4 query tiles,
 * each warp 16 rows x 64 tokens per tile in two steps of 32), 2 (2 query tiles, 32 tokens per warp),
 * 4 (one query tile, 16 tokens per warp).
 */
template <int Dim, int Split>
__device__ __forceinline__ void TaskBody(const TaskParams& params, unsigned char* shared, int kvHead, int slotStart,
                                         int numTokens, int rowStart, int rowCount) {
  using Layout = TaskLayout<Dim>;
  constexpr int kWarpTokens = kTaskTileTokens / Split;
  constexpr int kStep = kWarpTokens > 32 ? 32 : kWarpTokens;
  half* ring = reinterpret_cast<half*>(shared);
  int2* targets = reinterpret_cast<int2*>(shared + Layout::kTargetsOffset);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int queryTiles = (rowCount + 15) >> 4;
  const int queryTile = warp / Split;
  const int part = warp % Split;
  const bool active = queryTile < queryTiles;
  const int* slots = params.taskSlots + slotStart;
  const int numTiles = (numTokens + kTaskTileTokens - 1) / kTaskTileTokens;

  TaskTileSlots<Dim> next;
  StartTaskRing<Dim, false>(params, kvHead, ring, slots, numTokens, numTiles, next);
  uint32_t queryFragments[Dim / 16][4];
  if (active) {
    LoadTaskQuery<Dim>(params, rowStart, rowCount, kvHead, queryTile, queryFragments, targets + queryTile * 16,
                       part == 0, lane);
  }
  float o[Dim / 8][4];
  float rowMax[2];
  float rowSum[2];
  ResetRowState<Dim>(o, rowMax, rowSum);
  const LaneOffsets lanes = ComputeLaneOffsets<Dim>(lane);

  for (int tile = 0; tile < numTiles; ++tile) {
    AdvanceTaskRing<Dim, false>(params, kvHead, ring, slots, numTokens, numTiles, tile, next);
    if (active) {
      const half* stageK = ring + (tile % kTaskStages) * Layout::kStageHalves;
      const half* stageV = stageK + Layout::kTileHalves;
      const int tokensLeft = numTokens - tile * kTaskTileTokens;
#pragma unroll
      for (int sub = 0; sub < kWarpTokens / kStep; ++sub) {
        TaskStep<Dim, kStep>(stageK, stageV, tokensLeft, part * kWarpTokens + sub * kStep, queryFragments, o, rowMax,
                             rowSum, lanes, lane);
      }
    }
  }
  ReduceRowSums(rowSum);

  if constexpr (Split == 1) {
    if (!active) return;
    __syncwarp();
    WriteWarpRows<Dim>(params, targets + queryTile * 16, o, rowMax, rowSum, lane);
  } else {
    // Merge the Split warps of each query tile through shared memory (the ring is free now).
    const int column = (lane & 3) * 2;
    CopyAsyncWait<0>();
    __syncthreads();
    float* scratch = reinterpret_cast<float*>(shared);
    float* mine = scratch + warp * Layout::kScratchWarpFloats;
    if (active) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = (lane >> 2) + half * 8;
#pragma unroll
        for (int tile = 0; tile < Dim / 8; ++tile) {
          *reinterpret_cast<float2*>(mine + row * Layout::kScratchRowFloats + tile * 8 + column) =
              make_float2(o[tile][2 * half], o[tile][2 * half + 1]);
        }
        if ((lane & 3) == 0) {
          mine[16 * Layout::kScratchRowFloats + row] = rowMax[half];
          mine[16 * Layout::kScratchRowFloats + 16 + row] = rowSum[half];
        }
      }
    }
    __syncthreads();
    constexpr int kVectors = Dim / 4;
    for (int item = threadIdx.x; item < queryTiles * 16 * kVectors; item += kTaskThreads) {
      const int tileRow = item / kVectors;  // query tile * 16 + row
      const int vector = item % kVectors;
      const int row = tileRow & 15;
      const int2 target = targets[tileRow];
      if (target.x < 0) continue;
      const float* members = scratch + (tileRow >> 4) * Split * Layout::kScratchWarpFloats;
      float best = -INFINITY;
#pragma unroll
      for (int member = 0; member < Split; ++member) {
        best = fmaxf(best, members[member * Layout::kScratchWarpFloats + 16 * Layout::kScratchRowFloats + row]);
      }
      float sum = 0.0f;
      float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int member = 0; member < Split; ++member) {
        const float* state = members + member * Layout::kScratchWarpFloats;
        // Empty-state guard: a warp that saw no token of this task has max -inf and weight 0.
        const float memberMax = state[16 * Layout::kScratchRowFloats + row];
        const float weight = memberMax == -INFINITY ? 0.0f : exp2f(memberMax - best);
        sum += weight * state[16 * Layout::kScratchRowFloats + 16 + row];
        const float4 part4 = *reinterpret_cast<const float4*>(state + row * Layout::kScratchRowFloats + vector * 4);
        value.x += weight * part4.x;
        value.y += weight * part4.y;
        value.z += weight * part4.z;
        value.w += weight * part4.w;
      }
      const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
      reinterpret_cast<float4*>(TargetRow(params, target, Dim))[vector] =
          make_float4(value.x * inverse, value.y * inverse, value.z * inverse, value.w * inverse);
      if (target.y >= 0 && vector == 0) params.partialLse[target.y] = sum > 0.0f ? best + log2f(sum) : -INFINITY;
    }
  }
}

/**
 * The body of the wgmma task kernel (sm_90a): the CTA is one warpgroup, its task's rows (up to 64; rows
 * past `rowCount` are zero queries that write nothing) are the M = 64 of every product. Per 64-token
 * tile: S = Q K^T as Dim / 16 wgmma m64n64k16 (Q fragments in registers, K from the swizzled stage),
 * the online softmax on the accumulators (the mma.sync layout), O += P V as four wgmma m64n{Dim}k16 (P in
 * registers, V transposed from the stage). Both products are waited for before the tile ends, so the
 * next barrier frees the stage; the warpgroup's latency is covered by the other CTA of the multiprocessor.
 * `shared` is 1024-byte aligned (the swizzle atoms).
 */
template <int Dim>
__device__ __forceinline__ void WgmmaTaskBody(const TaskParams& params, unsigned char* shared, int kvHead,
                                              int slotStart, int numTokens, int rowStart, int rowCount) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Layout = TaskLayout<Dim>;
  constexpr uint32_t kStageBytes = Layout::kStageHalves * sizeof(half);
  constexpr uint32_t kTileBytes = Layout::kTileHalves * sizeof(half);
  constexpr uint32_t kBlockBytes = kTaskTileTokens * 128;  // one 64-dim block of a tile
  half* ring = reinterpret_cast<half*>(shared);
  int2* targets = reinterpret_cast<int2*>(shared + Layout::kTargetsOffset);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int* slots = params.taskSlots + slotStart;
  const int numTiles = (numTokens + kTaskTileTokens - 1) / kTaskTileTokens;

  TaskTileSlots<Dim> next;
  StartTaskRing<Dim, true>(params, kvHead, ring, slots, numTokens, numTiles, next);
  uint32_t queryFragments[Dim / 16][4];
  LoadTaskQuery<Dim>(params, rowStart, rowCount, kvHead, warp, queryFragments, targets + warp * 16, true, lane);
  float o[Dim / 8][4];
  float rowMax[2];
  float rowSum[2];
  ResetRowState<Dim>(o, rowMax, rowSum);
  float(&oFlat)[Dim / 2] = reinterpret_cast<float(&)[Dim / 2]>(o);
  const uint32_t ringAddress = SharedAddress(ring);

  for (int tile = 0; tile < numTiles; ++tile) {
    AdvanceTaskRing<Dim, true>(params, kvHead, ring, slots, numTokens, numTiles, tile, next);
    const uint32_t stageK = ringAddress + (tile % kTaskStages) * kStageBytes;
    const uint64_t keyDescriptor = SwizzledDescriptor(stageK, 16, 1024);
    const uint64_t valueDescriptor = SwizzledDescriptor(stageK + kTileBytes, kBlockBytes, 1024);
    float scores[kTaskTileTokens / 8][4];
    float(&scoresFlat)[kTaskTileTokens / 2] = reinterpret_cast<float(&)[kTaskTileTokens / 2]>(scores);
    WgmmaFence();
#pragma unroll
    for (int step = 0; step < Dim / 16; ++step) {
      // k-step `step`: dims 16 * step .. in block step / 4, 32 bytes per k-step into the 128-byte row.
      const uint32_t offset = (step >> 2) * kBlockBytes + (step & 3) * 32;
      WgmmaM64N64K16(scoresFlat, queryFragments[step], keyDescriptor + (offset >> 4), step);
    }
    WgmmaCommit();
    WgmmaWait<0>();
    FenceRegisters(scoresFlat);
    SoftmaxUpdate<Dim, kTaskTileTokens / 8>(scores, o, rowMax, rowSum, numTokens - tile * kTaskTileTokens, 0, lane);
    uint32_t probabilities[kTaskTileTokens / 16][4];
#pragma unroll
    for (int step = 0; step < kTaskTileTokens / 16; ++step) PackProbabilities(scores, step, probabilities[step]);
    FenceRegisters(oFlat);
    WgmmaFence();
#pragma unroll
    for (int step = 0; step < kTaskTileTokens / 16; ++step) {
      // k-step `step`: tokens 16 * step .., two 8-row groups of 1024 bytes each.
      if constexpr (Dim == 128) {
        WgmmaM64N128K16Transposed(oFlat, probabilities[step], valueDescriptor + ((step * 2048) >> 4));
      } else {
        WgmmaM64N64K16Transposed(oFlat, probabilities[step], valueDescriptor + ((step * 2048) >> 4));
      }
    }
    WgmmaCommit();
    WgmmaWait<0>();
    FenceRegisters(oFlat);
  }
  ReduceRowSums(rowSum);
  __syncwarp();
  WriteWarpRows<Dim>(params, targets + warp * 16, o, rowMax, rowSum, lane);
#endif
}

template <int Dim>
__device__ __forceinline__ void RunTask(const TaskParams& params, unsigned char* shared, int kvHead, int4 task) {
  const int queryTiles = (task.w + 15) >> 4;
  if (queryTiles >= 3) {
    TaskBody<Dim, 1>(params, shared, kvHead, task.x, task.y, task.z, task.w);
  } else if (queryTiles == 2) {
    TaskBody<Dim, 2>(params, shared, kvHead, task.x, task.y, task.z, task.w);
  } else {
    TaskBody<Dim, 4>(params, shared, kvHead, task.x, task.y, task.z, task.w);
  }
}

/**
 * Runs this CTA's (task, KV head): CTA `b` is KV head `b % numKvHeads` of task `b / numKvHeads`. With a
 * block profile (profiling launches only) thread 0 records the CTA's start, end and multiprocessor.
 */
template <typename Run>
__device__ __forceinline__ void RunBlockTask(const TaskParams& params, Run&& run) {
  const unsigned long long start = params.blockProfile != nullptr ? GlobalTimer() : 0;
  const int4 task = __ldg(reinterpret_cast<const int4*>(params.tasks) + blockIdx.x / params.numKvHeads);
  run(static_cast<int>(blockIdx.x % params.numKvHeads), task);
  if (params.blockProfile != nullptr) {
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long* record = params.blockProfile + 3 * static_cast<size_t>(blockIdx.x);
      record[0] = start;
      record[1] = GlobalTimer();
      record[2] = MultiprocessorId();
    }
  }
}

template <int Dim>
__global__ void __launch_bounds__(kTaskThreads, kTaskBlocksPerMultiprocessor)
    TaskAttentionMmaKernel(const TaskParams params) {
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  AllowDependentLaunch();
  RunBlockTask(params, [&](int kvHead, int4 task) { RunTask<Dim>(params, sharedBytes, kvHead, task); });
}

/**
 * The Hopper task kernel (sm_90a): tasks of at least `params.wgmmaMinRows` rows on wgmma; smaller ones on
 * the mma.sync bodies, whose split of each tile along the KV suits decode-style tasks better
 * (KERNEL_NOTES.md, v11 and v12). The threshold is a launch parameter on purpose: with a compile-time 33
 * the 3-4 query-tile mma.sync body is dead code, ptxas allocates 225 registers instead of 242 and the
 * decode-style bodies ran 1.3x slower on an H200. Only the sm_90a build has a body; the host launches
 * it on compute capability 9.0 alone.
 */
template <int Dim>
__global__ void __launch_bounds__(kTaskThreads, kTaskBlocksPerMultiprocessor)
    TaskAttentionWgmmaKernel(const TaskParams params) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  AllowDependentLaunch();
  // The dynamic window's start is not promised to be 1024-byte aligned: round up (1 KB is reserved).
  const uint32_t start = SharedAddress(sharedBytes);
  unsigned char* shared = sharedBytes + (((start + 1023u) & ~1023u) - start);
  RunBlockTask(params, [&](int kvHead, int4 task) {
    if (task.w >= params.wgmmaMinRows) {
      WgmmaTaskBody<Dim>(params, shared, kvHead, task.x, task.y, task.z, task.w);
    } else {
      RunTask<Dim>(params, shared, kvHead, task);
    }
  });
#else
  __trap();
#endif
}

// ---------------------------------------------------------------------------------------------
// CUDA-core paths

__device__ __forceinline__ float LoadAsFloat(const float* data, size_t index) { return __ldg(data + index); }
__device__ __forceinline__ float LoadAsFloat(const half* data, size_t index) { return __half2float(data[index]); }

/** Online-softmax state of one (row, head) on one warp: lane holds dims lane + 32 * part, part < PerLane. */
template <int PerLane>
struct LaneState {
  float best = -INFINITY;
  float sum = 0.0f;
  float values[PerLane] = {};
};

/** Attends one warp's row (scaled q values per lane) to one KV row. */
template <int PerLane, typename Element>
__device__ __forceinline__ void AttendToken(LaneState<PerLane>& state, const float (&queryValues)[PerLane],
                                            const Element* keys, const Element* values, size_t rowOffset, int dim,
                                            int lane) {
  float dot = 0.0f;
#pragma unroll
  for (int part = 0; part < PerLane; ++part) {
    const int d = lane + part * 32;
    if (d < dim) dot += queryValues[part] * LoadAsFloat(keys, rowOffset + d);
  }
  for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
  const float newBest = fmaxf(state.best, dot);  // finite: dot is finite for finite inputs
  const float correction = exp2f(state.best - newBest);
  const float weight = exp2f(dot - newBest);
  state.sum = state.sum * correction + weight;
#pragma unroll
  for (int part = 0; part < PerLane; ++part) {
    const int d = lane + part * 32;
    if (d < dim) state.values[part] = state.values[part] * correction + weight * LoadAsFloat(values, rowOffset + d);
  }
  state.best = newBest;
}

template <int PerLane>
__device__ __forceinline__ void LoadScaledQuery(const TaskParams& params, size_t rowOffset, float (&queryValues)[PerLane],
                                                int lane) {
#pragma unroll
  for (int part = 0; part < PerLane; ++part) {
    const int d = lane + part * 32;
    queryValues[part] = d < params.headDim ? __ldg(params.q + rowOffset + d) * params.scaleLog2 : 0.0f;
  }
}

/** One (task, KV head) item on CUDA cores: one warp per row at a time. */
template <typename Element>
__device__ __forceinline__ void ScalarTask(const TaskParams& params, int kvHead, int4 packed) {
  const AttentionTask task{packed.x, packed.y, packed.z, packed.w};
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int dim = params.headDim;
  const Element* keys = static_cast<const Element*>(params.k);
  const Element* values = static_cast<const Element*>(params.v);
  const size_t slotStride = static_cast<size_t>(params.numKvHeads) * dim;
  for (int row = warp; row < task.rowCount; row += kTaskWarps) {
    const TaskRow entry = params.taskRows[task.rowStart + row];
    const int shift = kvHead * params.group;
    const int2 target = make_int2(entry.qRow + shift, entry.partialRow < 0 ? -1 : entry.partialRow + shift);
    float queryValues[kMaxPerLane];
    LoadScaledQuery<kMaxPerLane>(params, static_cast<size_t>(target.x) * dim, queryValues, lane);
    LaneState<kMaxPerLane> state;
    for (int token = 0; token < task.numTokens; ++token) {
      const size_t rowOffset =
          static_cast<size_t>(__ldg(params.taskSlots + task.slotStart + token)) * slotStride + kvHead * dim;
      AttendToken(state, queryValues, keys, values, rowOffset, dim, lane);
    }
    float* destination = TargetRow(params, target, dim);
    // Empty-state guard: a task has at least one token, but a row that saw none writes o = 0, lse = -inf.
    const float inverse = state.sum > 0.0f ? 1.0f / state.sum : 0.0f;
#pragma unroll
    for (int part = 0; part < kMaxPerLane; ++part) {
      const int d = lane + part * 32;
      if (d < dim) destination[d] = state.values[part] * inverse;
    }
    if (target.y >= 0 && lane == 0) {
      params.partialLse[target.y] = state.sum > 0.0f ? state.best + log2f(state.sum) : -INFINITY;
    }
  }
}

template <typename Element>
__global__ void __launch_bounds__(kTaskThreads) TaskAttentionScalarKernel(const TaskParams params) {
  AllowDependentLaunch();
  RunBlockTask(params, [&](int kvHead, int4 task) { ScalarTask<Element>(params, kvHead, task); });
}

/**
 * Converts `Count` (2 or 4) consecutive elements at `source`, aligned to `Count` elements, to floats; `L2`
 * reads through L2 only (`ld.global.cg`: partial states another launch wrote).
 */
template <int Count, bool L2>
__device__ __forceinline__ void LoadVector(const half* source, float* out) {
  static_assert(!L2, "half rows are K and V, read through the texture path");
  if constexpr (Count == 4) {
    const uint2 bits = __ldg(reinterpret_cast<const uint2*>(source));
    const float2 low = __half22float2(*reinterpret_cast<const __half2*>(&bits.x));
    const float2 high = __half22float2(*reinterpret_cast<const __half2*>(&bits.y));
    out[0] = low.x, out[1] = low.y, out[2] = high.x, out[3] = high.y;
  } else {
    const float2 pair = __half22float2(__ldg(reinterpret_cast<const __half2*>(source)));
    out[0] = pair.x, out[1] = pair.y;
  }
}
template <int Count, bool L2>
__device__ __forceinline__ void LoadVector(const float* source, float* out) {
  if constexpr (Count == 4) {
    const float4* address = reinterpret_cast<const float4*>(source);
    const float4 quad = L2 ? __ldcg(address) : __ldg(address);
    out[0] = quad.x, out[1] = quad.y, out[2] = quad.z, out[3] = quad.w;
  } else {
    const float2* address = reinterpret_cast<const float2*>(source);
    const float2 pair = L2 ? __ldcg(address) : __ldg(address);
    out[0] = pair.x, out[1] = pair.y;
  }
}

/** Elements per vector load of a lane's dims: 4 or 2 when the head dim allows aligned vectors, else 1. */
template <int PerLane>
__device__ __forceinline__ int MergeVectorWidth(int dim) {
  if (PerLane % 4 == 0 && dim % 4 == 0) return 4;
  return dim % 2 == 0 ? 2 : 1;
}

/**
 * Loads a lane's dims `first .. first + PerLane` of a row (zeros past `dim`) as floats: vectors of the
 * widest aligned width when all of them exist, else one at a time. `L2`: see LoadVector.
 */
template <int PerLane, bool L2, typename Element>
__device__ __forceinline__ void LoadLaneDims(const Element* row, int first, int dim, float (&out)[PerLane]) {
  const int width = first + PerLane <= dim ? MergeVectorWidth<PerLane>(dim) : 1;
  if constexpr (PerLane % 4 == 0) {
    if (width == 4) {
#pragma unroll
      for (int part = 0; part < PerLane; part += 4) LoadVector<4, L2>(row + first + part, out + part);
      return;
    }
  }
  if (width == 2) {
#pragma unroll
    for (int part = 0; part < PerLane; part += 2) LoadVector<2, L2>(row + first + part, out + part);
    return;
  }
#pragma unroll
  for (int part = 0; part < PerLane; ++part) {
    const int d = first + part;
    if constexpr (L2) out[part] = d < dim ? __ldcg(row + d) : 0.0f;
    else out[part] = d < dim ? LoadAsFloat(row, d) : 0.0f;
  }
}

/** Adds one finite score (base 2) and its value row to a lane's online-softmax state. */
template <int PerLane>
__device__ __forceinline__ void AddToState(float& best, float& sum, float (&values)[PerLane], float score,
                                           const float (&row)[PerLane]) {
  const float newBest = fmaxf(best, score);
  const float correction = exp2f(best - newBest);  // 0 while the state is empty
  const float weight = exp2f(score - newBest);
  sum = sum * correction + weight;
#pragma unroll
  for (int part = 0; part < PerLane; ++part) values[part] = values[part] * correction + weight * row[part];
  best = newBest;
}

/**
 * One warp per (merge query, head); lane `l` holds dims `l * PerLane ..` (vector loads). Everything the plan
 * determines is read before waiting for the attention launch: the query's suffix tokens (K, V and q only,
 * attended to on CUDA cores) and the slots of its first `InFlight` partial states, so after the wait a
 * warp issues one round of independent partial loads. `InFlight` 4 (4 blocks of 8 warps per multiprocessor)
 * when the grid fits one wave that way, else 2 (6 blocks: 48 resident warps per multiprocessor). A query with
 * neither suffix nor partials writes zeros (it sees no token).
 */
template <typename Element, int PerLane, int InFlight>
__global__ void __launch_bounds__(256, PerLane > 4 || InFlight > 2 ? 4 : 6) TaskMergeKernel(const TaskParams params) {
  const int item = blockIdx.x * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (item >= params.numMergeQueries * params.numHeads) {
    WaitForPrerequisiteGrid();
    return;
  }
  const int query = __ldg(params.mergeQueries + item / params.numHeads);
  const int head = item % params.numHeads;
  const int dim = params.headDim;
  const int first = lane * PerLane;
  const size_t row = static_cast<size_t>(query) * params.numHeads + head;
  const int firstSuffix = __ldg(params.suffixIndptr + query);
  const int endSuffix = __ldg(params.suffixIndptr + query + 1);
  const int firstPartial = __ldg(params.queryPartialIndptr + query);
  const int endPartial = __ldg(params.queryPartialIndptr + query + 1);
  int partialSlots[InFlight];
#pragma unroll
  for (int step = 0; step < InFlight; ++step) {
    partialSlots[step] = firstPartial + step < endPartial ? __ldg(params.queryPartials + firstPartial + step) : -1;
  }
  float best = -INFINITY;
  float sum = 0.0f;
  float values[PerLane] = {};
  if (endSuffix > firstSuffix) {
    float queryValues[PerLane];
    LoadLaneDims<PerLane, false>(params.q + row * dim, first, dim, queryValues);
#pragma unroll
    for (int part = 0; part < PerLane; ++part) queryValues[part] *= params.scaleLog2;
    const size_t slotStride = static_cast<size_t>(params.numKvHeads) * dim;
    const size_t headOffset = static_cast<size_t>(head / params.group) * dim;
    const Element* keys = static_cast<const Element*>(params.k) + headOffset;
    const Element* valueRows = static_cast<const Element*>(params.v) + headOffset;
    for (int entry = firstSuffix; entry < endSuffix; ++entry) {
      const size_t offset = static_cast<size_t>(__ldg(params.suffixSlots + entry)) * slotStride;
      float key[PerLane];
      float value[PerLane];
      LoadLaneDims<PerLane, false>(keys + offset, first, dim, key);
      LoadLaneDims<PerLane, false>(valueRows + offset, first, dim, value);
      float dot = 0.0f;
#pragma unroll
      for (int part = 0; part < PerLane; ++part) dot += queryValues[part] * key[part];
      for (int offsetLane = 16; offsetLane > 0; offsetLane >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offsetLane);
      AddToState(best, sum, values, dot, value);  // dot is finite for finite inputs
    }
  }
  WaitForPrerequisiteGrid();  // the partials below are written by the attention launch
  for (int base = firstPartial; base < endPartial; base += InFlight) {
    if (base != firstPartial) {
#pragma unroll
      for (int step = 0; step < InFlight; ++step) {
        partialSlots[step] = base + step < endPartial ? __ldg(params.queryPartials + base + step) : -1;
      }
    }
    float lse[InFlight];
    float loaded[InFlight][PerLane];
#pragma unroll
    for (int step = 0; step < InFlight; ++step) {
      lse[step] = -INFINITY;
      if (partialSlots[step] >= 0) {
        const size_t partialRow = static_cast<size_t>(partialSlots[step]) * params.numHeads + head;
        lse[step] = __ldcg(params.partialLse + partialRow);
        LoadLaneDims<PerLane, true>(params.partialO + partialRow * dim, first, dim, loaded[step]);
      }
    }
    // Empty-state guard: a partial that saw no key (lse -inf; never written past the end) adds nothing.
#pragma unroll
    for (int step = 0; step < InFlight; ++step) {
      if (lse[step] != -INFINITY) AddToState(best, sum, values, lse[step], loaded[step]);
    }
  }
  // Empty-state guard: a query that sees no token gets zeros.
  const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
  float* output = params.out + row * dim;
  if (first + PerLane <= dim && MergeVectorWidth<PerLane>(dim) == 4) {
#pragma unroll
    for (int part = 0; part < PerLane; part += 4) {
      reinterpret_cast<float4*>(output + first + part)[0] =
          make_float4(values[part] * inverse, values[part + 1] * inverse, values[part + 2] * inverse,
                      values[part + 3] * inverse);
    }
  } else {
#pragma unroll
    for (int part = 0; part < PerLane; ++part) {
      if (first + part < dim) output[first + part] = values[part] * inverse;
    }
  }
}

/** Launches the merge kernel for a head dim's values per lane, picking `InFlight` by the grid's size. */
template <typename Element, int PerLane>
cudaError_t LaunchMerge(const cudaLaunchConfig_t& config, const TaskParams& params, long long warps) {
  // Four partials in flight per warp (4 blocks of 8 warps per multiprocessor: two still fit beside an
  // attention CTA, so their plan loads and suffixes overlap it) when the grid fits one wave that way, else
  // 2 in flight and 6 blocks per multiprocessor, so that large merges (a speculative tree's every query)
  // need few waves.
  // Past head dim 128 (8 values per lane) two in flight at 4 blocks per multiprocessor: more would spill.
  if (PerLane > 4 || warps <= static_cast<long long>(params.multiprocessors) * 32) {
    return cudaLaunchKernelEx(&config, TaskMergeKernel<Element, PerLane, (PerLane > 4 ? 2 : 4)>, params);
  }
  return cudaLaunchKernelEx(&config, TaskMergeKernel<Element, PerLane, 2>, params);
}

}  // namespace

int TaskRingStages() { return kTaskStages; }

size_t TaskSharedBytes(int headDim, AttentionKernel kernel) {
  const size_t bytes = headDim == 64 ? TaskLayout<64>::kSharedBytes : TaskLayout<128>::kSharedBytes;
  // The wgmma kernel rounds its window up to a 1024-byte boundary (its swizzle atoms).
  return kernel == AttentionKernel::kWgmma ? bytes + 1024 : bytes;
}

Status ConfigureTaskKernels() {
  DEFT_CUDA_CHECK(cudaFuncSetAttribute(TaskAttentionMmaKernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(TaskSharedBytes(64, AttentionKernel::kMma))));
  DEFT_CUDA_CHECK(cudaFuncSetAttribute(TaskAttentionMmaKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(TaskSharedBytes(128, AttentionKernel::kMma))));
  DEFT_CUDA_CHECK(cudaFuncSetAttribute(TaskAttentionWgmmaKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(TaskSharedBytes(128, AttentionKernel::kWgmma))));
  return Status::Ok();
}

Status LaunchTaskAttention(const TaskParams& params, KvType kvType, AttentionKernel kernel, cudaStream_t stream) {
  if (params.headDim > 32 * kMaxPerLane) return Status::Invalid("head dim above 256 is not supported");
  const bool tensorCores = kvType == KvType::kF16 && (params.headDim == 64 || params.headDim == 128);
  if (kernel == AttentionKernel::kMma && !tensorCores) {
    return Status::Invalid("the tensor-core kernel needs fp16 KV and head dim 64 or 128");
  }
  if (kernel == AttentionKernel::kWgmma && (kvType != KvType::kF16 || params.headDim != 128)) {
    return Status::Invalid("the wgmma kernel needs fp16 KV and head dim 128");
  }
  const bool useMma = kernel != AttentionKernel::kScalar && tensorCores;
  const long long blocks = static_cast<long long>(params.numTasks) * params.numKvHeads;
  if (blocks > 0x7fffffffLL) return Status::Invalid("the plan has too many tasks for one launch");
  if (blocks > 0) {
    const dim3 grid(static_cast<unsigned>(blocks));
    const size_t shared = TaskSharedBytes(params.headDim, kernel);
    if (kernel == AttentionKernel::kWgmma) {
      TaskAttentionWgmmaKernel<128><<<grid, kTaskThreads, shared, stream>>>(params);
    } else if (useMma) {
      if (params.headDim == 128) {
        TaskAttentionMmaKernel<128><<<grid, kTaskThreads, shared, stream>>>(params);
      } else {
        TaskAttentionMmaKernel<64><<<grid, kTaskThreads, shared, stream>>>(params);
      }
    } else if (kvType == KvType::kF16) {
      TaskAttentionScalarKernel<half><<<grid, kTaskThreads, 0, stream>>>(params);
    } else {
      TaskAttentionScalarKernel<float><<<grid, kTaskThreads, 0, stream>>>(params);
    }
    DEFT_CUDA_CHECK(cudaGetLastError());
  }
  if (params.numMergeQueries > 0) {
    const long long items = static_cast<long long>(params.numMergeQueries) * params.numHeads;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned>((items + 7) / 8));
    config.blockDim = dim3(256);
    config.dynamicSmemBytes = 0;
    config.stream = stream;
    // Programmatic dependent launch: the merge's blocks start while the attention launch ends; each
    // waits in griddepcontrol.wait for its writes before reading a partial.
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = params.dependentLaunch != 0 && blocks > 0 ? 1 : 0;
    // Values per lane sized to the head dim: fewer registers, more resident warps (latency-bound).
    const bool half16 = kvType == KvType::kF16;
    cudaError_t launched;
    if (params.headDim <= 64) {
      launched = half16 ? LaunchMerge<half, 2>(config, params, items) : LaunchMerge<float, 2>(config, params, items);
    } else if (params.headDim <= 128) {
      launched = half16 ? LaunchMerge<half, 4>(config, params, items) : LaunchMerge<float, 4>(config, params, items);
    } else {
      launched = half16 ? LaunchMerge<half, kMaxPerLane>(config, params, items)
                        : LaunchMerge<float, kMaxPerLane>(config, params, items);
    }
    DEFT_CUDA_CHECK(launched);
    DEFT_CUDA_CHECK(cudaGetLastError());
  }
  return Status::Ok();
}

}  // namespace deft
