// DeFT tree attention: one CTA per (work unit, KV head) computes every query head of the KV head's
// group for the unit's rows (row = query of the chunk * group + head in group), so each KV byte of a
// chunk leaves device memory once. Two kernels share the unit walk and the fused reduction:
//   - TreeAttentionMmaKernel: fp16 KV, tensor cores (mma.sync m16n8k16, fp32 accumulation);
//   - TreeAttentionScalarKernel: CUDA cores, f32 or fp16 KV, any head dim up to 256.
// Scores are pre-multiplied by scale * log2(e): softmax uses exp2 and every lse is base 2.
// A query seen by one chunk is written straight to the output. Otherwise each (chunk, query) writes a
// partial state (o normalised, f32; lse base 2) and the CTA that completes a query's last partial
// (an atomic counter per (query, KV head), reset after use) merges them in CSR order: deterministic,
// no atomics on outputs, one launch per layer.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/device_primitives.cuh"
#include "kernels/kernels.h"

namespace deft {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
/** CTAs of the tensor-core kernel resident per multiprocessor (registers capped at 128 per thread). */
constexpr int kMmaBlocksPerMultiprocessor = 3;
/** Tokens per KV tile staged in shared memory (K and V of one KV head: 16 KB per stage at head dim 128). */
constexpr int kTileTokens = 32;
/** Largest head dim of the CUDA-core kernel (values per lane). */
constexpr int kScalarMaxPerLane = 8;

using namespace device;  // NOLINT: the primitives of device_primitives.cuh

// ---------------------------------------------------------------------------------------------
// The unit a CTA works on

struct UnitView {
  int rowStart;     // first row of the execution chunk this unit computes
  int rowCount;
  int kvHead;
  int tokenStart;   // offset of the chunk's first token in tokenSlots / tokenSegments
  int numTokens;
  int queryStart;   // offset of the chunk's first query in chunkQueries
  int partialStart; // execution partial slot of the chunk's first query
  int maskWords;    // ceil(queries of the chunk / 32)
  const uint32_t* mask;
  bool fullyVisible;
};

__device__ __forceinline__ UnitView ReadUnit(const AttentionParams& params, int unitIndex, int kvHead) {
  const int4* record = reinterpret_cast<const int4*>(params.units + unitIndex);
  const int4 first = __ldg(record);
  const int4 second = __ldg(record + 1);
  const int4 third = __ldg(record + 2);
  UnitView view;
  view.tokenStart = first.x;
  view.numTokens = first.y;
  view.queryStart = first.z;
  view.maskWords = (first.w + 31) >> 5;
  view.partialStart = second.x;
  view.mask = params.mask + second.y;
  view.fullyVisible = second.z != 0;
  view.rowStart = second.w;
  view.rowCount = third.x;
  view.kvHead = kvHead;
  return view;
}

/** Whether the chunk's `query`-th query sees the chunk's token `token` (mask bit of its segment). */
__device__ __forceinline__ bool TokenVisible(const AttentionParams& params, const UnitView& unit, int token, int query) {
  const int segment = __ldg(params.tokenSegments + unit.tokenStart + token);
  const uint32_t word = __ldg(unit.mask + segment * unit.maskWords + (query >> 5));
  return ((word >> (query & 31)) & 1u) != 0;
}

/** Where a row's result goes: the output when the query has one partial, else its partial slot. */
struct RowTarget {
  float* o;    // headDim floats
  float* lse;  // nullptr when writing the output directly
};

__device__ __forceinline__ RowTarget TargetOfRow(const AttentionParams& params, const UnitView& unit, int chunkRow) {
  const int queryInChunk = chunkRow / params.group;
  const int headInGroup = chunkRow - queryInChunk * params.group;
  const int query = params.chunkQueries[unit.queryStart + queryInChunk];
  const int head = unit.kvHead * params.group + headInGroup;
  const int partials = params.queryPartialIndptr[query + 1] - params.queryPartialIndptr[query];
  if (partials == 1) {
    return RowTarget{params.out + (static_cast<size_t>(query) * params.numHeads + head) * params.headDim, nullptr};
  }
  const size_t slot = static_cast<size_t>(unit.partialStart + queryInChunk) * params.numHeads + head;
  return RowTarget{params.partialO + slot * params.headDim, params.partialLse + slot};
}

// ---------------------------------------------------------------------------------------------
// Fused reduction and the empty-query block

/**
 * Merges the partial states of (`query`, `head`) into the output in CSR order, with one warp, in one
 * pass: each round of up to 32 partials has every lane load one partial's slot and lse, the warp
 * rescales its running state to the round's maximum (shuffles), and the lanes (4 consecutive dims each,
 * float4) accumulate the weighted o rows with eight independent loads in flight. Partials are read
 * through L2 (__ldcg): other CTAs (or an earlier launch) wrote them. `waitForPartials` is called after
 * the loads that need only the schedule (a dependent launch overlaps them with the attention tail).
 */
template <typename Wait>
__device__ void MergeQueryHead(const AttentionParams& params, int query, int head, int lane, Wait waitForPartials) {
  const int first = __ldg(params.queryPartialIndptr + query);
  const int last = __ldg(params.queryPartialIndptr + query + 1);
  const int dim = params.headDim;
  const int firstSlot = first + lane < last ? __ldg(params.queryPartials + first + lane) : 0;
  waitForPartials();
  float* output = params.out + (static_cast<size_t>(query) * params.numHeads + head) * dim;
  const bool vectorized = (dim & 3) == 0;
  const int vectors = vectorized ? dim >> 2 : 0;
  float4 accumulator[2] = {make_float4(0.0f, 0.0f, 0.0f, 0.0f), make_float4(0.0f, 0.0f, 0.0f, 0.0f)};
  float scalarAccumulator[kScalarMaxPerLane];
#pragma unroll
  for (int part = 0; part < kScalarMaxPerLane; ++part) scalarAccumulator[part] = 0.0f;
  float best = -INFINITY;
  float total = 0.0f;
  for (int base = first; base < last; base += 32) {
    const int entry = base + lane;
    const int mySlot = base == first ? firstSlot : (entry < last ? params.queryPartials[entry] : 0);
    const float myLse =
        entry < last ? __ldcg(params.partialLse + static_cast<size_t>(mySlot) * params.numHeads + head) : -INFINITY;
    float roundBest = myLse;
    for (int offset = 16; offset > 0; offset >>= 1) roundBest = fmaxf(roundBest, __shfl_xor_sync(0xffffffffu, roundBest, offset));
    const float newBest = fmaxf(best, roundBest);
    // Empty-state guard: while no partial has seen a key (every lse so far -inf), skip the round, so
    // that exp2(-inf - -inf) never makes a NaN; such partials have o = 0 and contribute nothing.
    if (newBest == -INFINITY) continue;
    const float rescale = exp2f(best - newBest);  // 0 on the first round with a key (best = -inf)
    best = newBest;
    total *= rescale;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      accumulator[half].x *= rescale;
      accumulator[half].y *= rescale;
      accumulator[half].z *= rescale;
      accumulator[half].w *= rescale;
    }
#pragma unroll
    for (int part = 0; part < kScalarMaxPerLane; ++part) scalarAccumulator[part] *= rescale;
    const float myWeight = exp2f(myLse - best);  // 0 for lanes past the end (lse -inf)
    float roundTotal = myWeight;
    for (int offset = 16; offset > 0; offset >>= 1) roundTotal += __shfl_xor_sync(0xffffffffu, roundTotal, offset);
    total += roundTotal;
    const int count = min(32, last - base);
    for (int index = 0; index < count; index += 8) {
      int slots[8];
      float weights[8];
#pragma unroll
      for (int step = 0; step < 8; ++step) {
        slots[step] = __shfl_sync(0xffffffffu, mySlot, (index + step) & 31);
        weights[step] = __shfl_sync(0xffffffffu, myWeight, (index + step) & 31);
      }
      if (vectorized) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int vector = lane + half * 32;
          if (vector >= vectors) continue;
          float4 loaded[8];
#pragma unroll
          for (int step = 0; step < 8; ++step) {
            loaded[step] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (index + step < count) {  // never read a slot that was not written (it may hold NaN)
              loaded[step] = __ldcg(reinterpret_cast<const float4*>(
                                        params.partialO + (static_cast<size_t>(slots[step]) * params.numHeads + head) * dim) +
                                    vector);
            }
          }
#pragma unroll
          for (int step = 0; step < 8; ++step) {
            accumulator[half].x += weights[step] * loaded[step].x;
            accumulator[half].y += weights[step] * loaded[step].y;
            accumulator[half].z += weights[step] * loaded[step].z;
            accumulator[half].w += weights[step] * loaded[step].w;
          }
        }
      } else {
#pragma unroll
        for (int step = 0; step < 8; ++step) {
          if (index + step >= count) continue;
          const float* partial = params.partialO + (static_cast<size_t>(slots[step]) * params.numHeads + head) * dim;
#pragma unroll
          for (int part = 0; part < kScalarMaxPerLane; ++part) {
            const int d = lane + part * 32;
            if (d < dim) scalarAccumulator[part] += weights[step] * __ldcg(partial + d);
          }
        }
      }
    }
  }
  if (best == -INFINITY) {
    // Empty-state guard: no partial saw a key, so the output is zero.
    for (int index = lane; index < dim; index += 32) output[index] = 0.0f;
    return;
  }
  const float inverse = 1.0f / total;
  if (vectorized) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int vector = lane + half * 32;
      if (vector < vectors) {
        const float4 value = accumulator[half];
        reinterpret_cast<float4*>(output)[vector] =
            make_float4(value.x * inverse, value.y * inverse, value.z * inverse, value.w * inverse);
      }
    }
  } else {
#pragma unroll
    for (int part = 0; part < kScalarMaxPerLane; ++part) {
      const int d = lane + part * 32;
      if (d < dim) output[d] = scalarAccumulator[part] * inverse;
    }
  }
}

/** No wait: the partials were written by this launch and made visible by the arrival counters. */
struct NoWait {
  __device__ void operator()() const {}
};

/** Waits for the attention launch (griddepcontrol.wait) before the first partial is read. */
struct WaitForAttention {
  __device__ void operator()() const { WaitForPrerequisiteGrid(); }
};

/**
 * After a unit wrote its rows: counts one arrival per (query, KV head) for every query of the unit
 * with several partials; the CTA that brings a count to the query's number of partials merges them
 * and resets the counter for the next launch. `scratch` holds kThreads + 1 ints of shared memory.
 */
__device__ void FinishUnit(const AttentionParams& params, const UnitView& unit, int* scratch) {
  if (params.fuseMerge == 0) return;  // a second launch merges
  __threadfence();  // this thread's partial writes are visible device-wide before its CTA counts them
  __syncthreads();
  int* finishedCount = scratch;
  int* finished = scratch + 1;
  const int firstQuery = unit.rowStart / params.group;
  const int endQuery = (unit.rowStart + unit.rowCount) / params.group;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  for (int batch = firstQuery; batch < endQuery; batch += kThreads) {
    if (threadIdx.x == 0) *finishedCount = 0;
    __syncthreads();
    const int queryInChunk = batch + threadIdx.x;
    if (queryInChunk < endQuery) {
      const int query = params.chunkQueries[unit.queryStart + queryInChunk];
      const unsigned partials =
          static_cast<unsigned>(params.queryPartialIndptr[query + 1] - params.queryPartialIndptr[query]);
      if (partials > 1) {
        unsigned* counter = params.counters + static_cast<size_t>(query) * params.numKvHeads + unit.kvHead;
        const unsigned previous = atomicAdd(counter, 1u);
        if (previous == partials - 1) {
          *counter = 0;  // every partial has arrived: nothing else touches it in this launch
          finished[atomicAdd(finishedCount, 1)] = query;
        }
      }
    }
    __syncthreads();
    const int count = *finishedCount;
    if (count > 0) {
      __threadfence();  // acquire side: see the partials of the CTAs counted before us
      for (int item = warp; item < count * params.group; item += kWarps) {
        MergeQueryHead(params, finished[item / params.group], unit.kvHead * params.group + item % params.group, lane,
                       NoWait{});
      }
    }
    __syncthreads();
  }
}

/** The extra last block of a launch: zero outputs of queries that see no token (no partial at all). */
__device__ void ZeroEmptyQueries(const AttentionParams& params) {
  const int rowFloats = params.numHeads * params.headDim;
  for (int item = 0; item < params.numEmptyQueries; ++item) {
    float* output = params.out + static_cast<size_t>(params.emptyQueries[item]) * rowFloats;
    for (int index = threadIdx.x; index < rowFloats; index += blockDim.x) output[index] = 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel

template <int Dim>
struct MmaLayout {
  static constexpr int kChunks = Dim / 8;                              // 16-byte chunks per row
  static constexpr int kStageHalves = 2 * kTileTokens * Dim;           // K tile then V tile
  static constexpr int kScratchRowFloats = Dim + 4;                    // merge scratch row (padded)
  static constexpr int kScratchWarpFloats = 16 * kScratchRowFloats + 32;  // o rows, then m[16], l[16]
};

/** Slot indices of the token rows one thread copies for one tile (-1: past the chunk's end). */
template <int Dim>
struct TileSlots {
  static constexpr int kCount = kTileTokens * (Dim / 8) / kThreads;
  int slot[kCount];
};

/** Shared state of one CTA's walk over its unit. */
template <int Dim>
struct MmaWalk {
  half* ring;         // ringStages stages of [K tile | V tile], each [kTileTokens, Dim] swizzled
  int* scratch;       // kThreads + 1 ints
  int ringStages;
  int numTiles;
  bool resident;      // every tile of the chunk fits the ring: loaded once, reused by every pass
  int passIndex;
  TileSlots<Dim> next;  // slots of the next tile to issue (prefetched one pipeline step ahead)
};

/** Loads the slots of `tile` for this thread; used one pipeline step later, so the loads are in flight meanwhile. */
template <int Dim>
__device__ __forceinline__ void FetchSlots(const AttentionParams& params, const UnitView& unit, int tile,
                                           TileSlots<Dim>& slots) {
  constexpr int kChunks = Dim / 8;
#pragma unroll
  for (int step = 0; step < TileSlots<Dim>::kCount; ++step) {
    const int row = (threadIdx.x + step * kThreads) / kChunks;
    const int token = tile * kTileTokens + row;
    slots.slot[step] = token < unit.numTokens ? __ldg(params.tokenSlots + unit.tokenStart + token) : -1;
  }
}

/** Issues the 16-byte copies of `tile`'s K and V rows into its ring stage (rows past the end are zero-filled). */
template <int Dim>
__device__ __forceinline__ void IssueTile(const AttentionParams& params, const UnitView& unit, const MmaWalk<Dim>& walk,
                                          int tile, const TileSlots<Dim>& slots) {
  using Layout = MmaLayout<Dim>;
  half* stageK = walk.ring + (tile % walk.ringStages) * Layout::kStageHalves;
  half* stageV = stageK + kTileTokens * Dim;
  const half* keys = static_cast<const half*>(params.k) + unit.kvHead * Dim;
  const half* values = static_cast<const half*>(params.v) + unit.kvHead * Dim;
  const size_t slotStride = static_cast<size_t>(params.numKvHeads) * Dim;
#pragma unroll
  for (int step = 0; step < TileSlots<Dim>::kCount; ++step) {
    const int index = threadIdx.x + step * kThreads;
    const int row = index / Layout::kChunks;
    const int chunk = index % Layout::kChunks;
    const int slot = slots.slot[step];
    const bool valid = slot >= 0;
    const size_t offset = valid ? static_cast<size_t>(slot) * slotStride + chunk * 8 : 0;
    const int sharedOffset = SwizzledOffset<Dim>(row, chunk);
    CopyAsync16(stageK + sharedOffset, keys + offset, valid);
    CopyAsync16(stageV + sharedOffset, values + offset, valid);
  }
}

/**
 * Issues tiles `[0, count)` (one commit group each) and leaves the slots of tile `count` in `next`.
 * The slot loads of the first kBatchedPrologueTiles tiles are all issued before any copy, so a CTA's
 * prologue waits for one memory latency, not one per tile; longer (resident) prologues fetch each
 * further tile's slots one step ahead.
 */
template <int Dim>
__device__ __forceinline__ void IssuePrologue(const AttentionParams& params, const UnitView& unit, const MmaWalk<Dim>& walk,
                                              int count, TileSlots<Dim>& next) {
  constexpr int kBatchedPrologueTiles = 3;
  TileSlots<Dim> batch[kBatchedPrologueTiles];
#pragma unroll
  for (int tile = 0; tile < kBatchedPrologueTiles; ++tile) {
    if (tile < count) FetchSlots<Dim>(params, unit, tile, batch[tile]);
  }
#pragma unroll
  for (int tile = 0; tile < kBatchedPrologueTiles; ++tile) {
    if (tile < count) {
      IssueTile<Dim>(params, unit, walk, tile, batch[tile]);
      CopyAsyncCommit();
    }
  }
  if (count <= kBatchedPrologueTiles) {
    FetchSlots<Dim>(params, unit, count, next);
    return;
  }
  TileSlots<Dim> current;
  FetchSlots<Dim>(params, unit, kBatchedPrologueTiles, current);
  for (int tile = kBatchedPrologueTiles; tile < count; ++tile) {
    FetchSlots<Dim>(params, unit, tile + 1, next);
    IssueTile<Dim>(params, unit, walk, tile, current);
    CopyAsyncCommit();
    current = next;
  }
  next = current;
}

/**
 * Where one warp's 16 rows go: lane r (and r + 16) holds row r's. `offset` is the row's float offset
 * in the output (when `lse` is -1: the query has one partial) or in partialO; -1 when the row is padding.
 */
struct WarpRows {
  long long offset;
  int lse;
};

/**
 * Loads one warp's 16 query rows (scaled by scale * log2(e), fp16) straight into mma A fragments:
 * lane (g = lane / 4, t = lane % 4) holds rows g and g + 8, columns 16s + 2t (+1) and 16s + 8 + 2t (+1)
 * of k-step s. Each row's query and target are loaded once by lane r (and r + 16) and broadcast with
 * shuffles; all 8-byte Q loads of a fragment step are independent, so a pass pays two memory latencies
 * and needs no shared memory for Q.
 */
template <int Dim>
__device__ __forceinline__ WarpRows LoadQueryTile(const AttentionParams& params, const UnitView& unit, int queryTile,
                                                  uint32_t (&fragments)[Dim / 16][4], int lane) {
  const int myRow = lane & 15;
  const int unitRow = queryTile * 16 + myRow;
  long long queryOffset = -1;
  WarpRows rows{-1, -1};
  if (unitRow < unit.rowCount) {
    const int chunkRow = unit.rowStart + unitRow;
    const int queryInChunk = chunkRow / params.group;
    const int head = unit.kvHead * params.group + (chunkRow - queryInChunk * params.group);
    const int query = __ldg(params.chunkQueries + unit.queryStart + queryInChunk);
    queryOffset = (static_cast<long long>(query) * params.numHeads + head) * Dim;
    const int partials = __ldg(params.queryPartialIndptr + query + 1) - __ldg(params.queryPartialIndptr + query);
    if (partials == 1) {
      rows.offset = queryOffset;  // the output has q's layout
    } else {
      const long long slot = static_cast<long long>(unit.partialStart + queryInChunk) * params.numHeads + head;
      rows.offset = slot * Dim;
      rows.lse = static_cast<int>(slot);
    }
  }
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
  return rows;
}

/**
 * One warp, one query tile (16 rows), `Step` tokens of a staged KV tile starting at tile row
 * `firstRow`: S = Q K^T on tensor cores, mask, online softmax (base 2), O += P V.
 */
template <int Dim, int Step>
__device__ __forceinline__ void MmaStep(const AttentionParams& params, const UnitView& unit, const half* stageK,
                                        const half* stageV, int tileFirstToken, int firstRow,
                                        const uint32_t (&queryFragments)[Dim / 16][4], float (&o)[Dim / 8][4],
                                        float (&rowMax)[2], float (&rowSum)[2], const int (&rowQuery)[2], int lane) {
  constexpr int kNTiles = Step / 8;
  const int firstToken = tileFirstToken + firstRow;
  if (firstToken >= unit.numTokens) return;  // warp-uniform: nothing of this step exists

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
      const int row = firstRow + tile * 8 + (lane & 7) + ((lane >> 4) << 3);
      LoadMatrixX4(keyFragments, stageK + SwizzledOffset<Dim>(row, (step << 1) + ((lane >> 3) & 1)));
      Mma16816(scores[tile], queryFragments[step], keyFragments[0], keyFragments[1]);
      Mma16816(scores[tile + 1], queryFragments[step], keyFragments[2], keyFragments[3]);
    }
  }

  const int column = (lane & 3) * 2;
  if (!unit.fullyVisible || firstToken + Step > unit.numTokens) {
#pragma unroll
    for (int tile = 0; tile < kNTiles; ++tile) {
#pragma unroll
      for (int element = 0; element < 4; ++element) {
        const int token = firstToken + tile * 8 + column + (element & 1);
        const int query = rowQuery[element >> 1];
        bool visible = token < unit.numTokens;
        if (visible && !unit.fullyVisible) visible = query >= 0 && TokenVisible(params, unit, token, query);
        if (!visible) scores[tile][element] = -INFINITY;
      }
    }
  }

  float newMax[2] = {rowMax[0], rowMax[1]};
#pragma unroll
  for (int tile = 0; tile < kNTiles; ++tile) {
    newMax[0] = fmaxf(newMax[0], fmaxf(scores[tile][0], scores[tile][1]));
    newMax[1] = fmaxf(newMax[1], fmaxf(scores[tile][2], scores[tile][3]));
  }
  float base[2];
  float correction[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    newMax[half] = fmaxf(newMax[half], __shfl_xor_sync(0xffffffffu, newMax[half], 1));
    newMax[half] = fmaxf(newMax[half], __shfl_xor_sync(0xffffffffu, newMax[half], 2));
    // Empty-state guard: while a row has seen no key its max is -inf; subtract 0 instead so that
    // exp2(-inf - base) is 0 rather than NaN.
    base[half] = newMax[half] == -INFINITY ? 0.0f : newMax[half];
    correction[half] = exp2f(rowMax[half] - base[half]);
    rowMax[half] = newMax[half];
    rowSum[half] *= correction[half];
  }
#pragma unroll
  for (int tile = 0; tile < kNTiles; ++tile) {
    scores[tile][0] = exp2f(scores[tile][0] - base[0]);
    scores[tile][1] = exp2f(scores[tile][1] - base[0]);
    scores[tile][2] = exp2f(scores[tile][2] - base[1]);
    scores[tile][3] = exp2f(scores[tile][3] - base[1]);
    rowSum[0] += scores[tile][0] + scores[tile][1];
    rowSum[1] += scores[tile][2] + scores[tile][3];
  }
#pragma unroll
  for (int tile = 0; tile < Dim / 8; ++tile) {
    o[tile][0] *= correction[0];
    o[tile][1] *= correction[0];
    o[tile][2] *= correction[1];
    o[tile][3] *= correction[1];
  }
#pragma unroll
  for (int step = 0; step < Step / 16; ++step) {
    uint32_t probabilities[4];
    probabilities[0] = PackHalf2(scores[2 * step][0], scores[2 * step][1]);
    probabilities[1] = PackHalf2(scores[2 * step][2], scores[2 * step][3]);
    probabilities[2] = PackHalf2(scores[2 * step + 1][0], scores[2 * step + 1][1]);
    probabilities[3] = PackHalf2(scores[2 * step + 1][2], scores[2 * step + 1][3]);
    const int row = firstRow + step * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
    for (int tile = 0; tile < Dim / 8; tile += 2) {
      uint32_t valueFragments[4];
      LoadMatrixX4Transposed(valueFragments, stageV + SwizzledOffset<Dim>(row, tile + (lane >> 4)));
      Mma16816(o[tile], probabilities, valueFragments[0], valueFragments[1]);
      Mma16816(o[tile + 1], probabilities, valueFragments[2], valueFragments[3]);
    }
  }
}

/**
 * One pass over the unit's KV tiles for up to kWarps / (kTileTokens / Step) query tiles starting at
 * `firstQueryTile`. With Step == kTileTokens each warp owns a query tile and writes its rows from
 * registers; with a smaller Step, kTileTokens / Step warps share a query tile, each taking Step
 * tokens of every KV tile, and their states are merged through shared memory (the last pass only).
 */
template <int Dim, int Step>
__device__ void MmaPass(const AttentionParams& params, const UnitView& unit, MmaWalk<Dim>& walk, int firstQueryTile) {
  using Layout = MmaLayout<Dim>;
  constexpr int kSplit = kTileTokens / Step;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int numQueryTiles = (unit.rowCount + 15) >> 4;
  const int queryTile = firstQueryTile + warp / kSplit;
  const int part = warp % kSplit;
  const bool active = queryTile < numQueryTiles;

  uint32_t queryFragments[Dim / 16][4];
  int rowQuery[2] = {-1, -1};
  WarpRows rows{-1, -1};
  if (active) {
    rows = LoadQueryTile<Dim>(params, unit, queryTile, queryFragments, lane);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int unitRow = queryTile * 16 + (lane >> 2) + half * 8;
      if (unitRow < unit.rowCount) rowQuery[half] = (unit.rowStart + unitRow) / params.group;
    }
  }
  float o[Dim / 8][4];
#pragma unroll
  for (int tile = 0; tile < Dim / 8; ++tile) {
#pragma unroll
    for (int element = 0; element < 4; ++element) o[tile][element] = 0.0f;
  }
  float rowMax[2] = {-INFINITY, -INFINITY};
  float rowSum[2] = {0.0f, 0.0f};

  const int stages = walk.ringStages;
  const bool firstPass = walk.passIndex == 0;
  TileSlots<Dim>& next = walk.next;
  if (!walk.resident && !firstPass) {
    __syncthreads();  // every warp is done with the previous pass's tiles
    IssuePrologue<Dim>(params, unit, walk, min(stages, walk.numTiles), next);
  }
  for (int tile = 0; tile < walk.numTiles; ++tile) {
    if (!walk.resident || firstPass) {
      CopyAsyncWaitAtMost(walk.resident ? walk.numTiles - 1 - tile : stages - 1);
      __syncthreads();
    }
    const half* stageK = walk.ring + (tile % stages) * Layout::kStageHalves;
    if (active) {
      MmaStep<Dim, Step>(params, unit, stageK, stageK + kTileTokens * Dim, tile * kTileTokens, part * Step,
                         queryFragments, o, rowMax, rowSum, rowQuery, lane);
    }
    if (!walk.resident) {
      __syncthreads();  // the stage is free again
      if (tile + stages < walk.numTiles) {
        IssueTile<Dim>(params, unit, walk, tile + stages, next);
        FetchSlots<Dim>(params, unit, tile + stages + 1, next);
      }
      CopyAsyncCommit();
    }
  }
  ++walk.passIndex;

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    rowSum[half] += __shfl_xor_sync(0xffffffffu, rowSum[half], 1);
    rowSum[half] += __shfl_xor_sync(0xffffffffu, rowSum[half], 2);
  }
  const int column = (lane & 3) * 2;

  if constexpr (kSplit == 1) {
    if (!active) return;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int rowInTile = (lane >> 2) + half * 8;
      const long long offset = __shfl_sync(0xffffffffu, rows.offset, rowInTile);
      const int lse = __shfl_sync(0xffffffffu, rows.lse, rowInTile);
      if (offset < 0) continue;
      const RowTarget target{(lse < 0 ? params.out : params.partialO) + offset, lse < 0 ? nullptr : params.partialLse + lse};
      const float sum = rowSum[half];
      const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
      for (int tile = 0; tile < Dim / 8; ++tile) {
        *reinterpret_cast<float2*>(target.o + tile * 8 + column) =
            make_float2(o[tile][2 * half] * inverse, o[tile][2 * half + 1] * inverse);
      }
      if (target.lse != nullptr && (lane & 3) == 0) *target.lse = sum > 0.0f ? rowMax[half] + log2f(sum) : -INFINITY;
    }
  } else {
    // Merge the kSplit warps of each query tile through shared memory (the ring is free: last pass).
    CopyAsyncWait<0>();
    __syncthreads();
    float* scratch = reinterpret_cast<float*>(walk.ring);
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
    const int tilesInPass = min(kWarps / kSplit, numQueryTiles - firstQueryTile);
    // Where each row goes, computed once per row (not per element).
    RowTarget* targets = reinterpret_cast<RowTarget*>(scratch + kWarps * Layout::kScratchWarpFloats);
    if (threadIdx.x < tilesInPass * 16) {
      const int unitRow = firstQueryTile * 16 + threadIdx.x;
      if (unitRow < unit.rowCount) targets[threadIdx.x] = TargetOfRow(params, unit, unit.rowStart + unitRow);
    }
    __syncthreads();
    for (int item = threadIdx.x; item < tilesInPass * 16 * Dim; item += kThreads) {
      const int tileInPass = item / (16 * Dim);
      const int row = (item / Dim) % 16;
      const int d = item % Dim;
      const int unitRow = (firstQueryTile + tileInPass) * 16 + row;
      if (unitRow >= unit.rowCount) continue;
      const float* group = scratch + tileInPass * kSplit * Layout::kScratchWarpFloats;
      float best = -INFINITY;
#pragma unroll
      for (int member = 0; member < kSplit; ++member) {
        best = fmaxf(best, group[member * Layout::kScratchWarpFloats + 16 * Layout::kScratchRowFloats + row]);
      }
      const RowTarget target = targets[tileInPass * 16 + row];
      if (best == -INFINITY) {
        // Empty-state guard: no warp saw a visible key for this row.
        target.o[d] = 0.0f;
        if (target.lse != nullptr && d == 0) *target.lse = -INFINITY;
        continue;
      }
      float sum = 0.0f;
      float value = 0.0f;
#pragma unroll
      for (int member = 0; member < kSplit; ++member) {
        const float* state = group + member * Layout::kScratchWarpFloats;
        const float weight = exp2f(state[16 * Layout::kScratchRowFloats + row] - best);
        sum += weight * state[16 * Layout::kScratchRowFloats + 16 + row];
        value += weight * state[row * Layout::kScratchRowFloats + d];
      }
      target.o[d] = value / sum;
      if (target.lse != nullptr && d == 0) *target.lse = best + log2f(sum);
    }
  }
}

/** Shared-memory bytes the split merge of a pass uses (aliases the ring). */
template <int Dim>
constexpr size_t MmaMergeScratchBytes() {
  return (static_cast<size_t>(kWarps) * MmaLayout<Dim>::kScratchWarpFloats) * sizeof(float) +
         static_cast<size_t>(kWarps) * 16 * sizeof(RowTarget);
}

template <int Dim>
__global__ void __launch_bounds__(kThreads, kMmaBlocksPerMultiprocessor) TreeAttentionMmaKernel(const AttentionParams params) {
  using Layout = MmaLayout<Dim>;
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  AllowDependentLaunch();
  if (blockIdx.x >= static_cast<unsigned>(params.numUnits * params.numKvHeads)) {
    ZeroEmptyQueries(params);
    return;
  }
  const UnitView unit = ReadUnit(params, blockIdx.x / params.numKvHeads, blockIdx.x % params.numKvHeads);

  MmaWalk<Dim> walk;
  walk.ring = reinterpret_cast<half*>(sharedBytes);
  const size_t ringBytes = static_cast<size_t>(params.ringStages) * Layout::kStageHalves * sizeof(half);
  walk.scratch = reinterpret_cast<int*>(sharedBytes + max(ringBytes, MmaMergeScratchBytes<Dim>()));
  walk.ringStages = params.ringStages;
  walk.numTiles = (unit.numTokens + kTileTokens - 1) / kTileTokens;
  walk.resident = walk.numTiles <= walk.ringStages;
  walk.passIndex = 0;

  // Prologue of the first pass: the first ringStages tiles (all of them when resident).
  IssuePrologue<Dim>(params, unit, walk, min(walk.ringStages, walk.numTiles), walk.next);

  const int numQueryTiles = (unit.rowCount + 15) >> 4;
  const int fullPasses = numQueryTiles / kWarps;
  for (int pass = 0; pass < fullPasses; ++pass) MmaPass<Dim, kTileTokens>(params, unit, walk, pass * kWarps);
  const int remainder = numQueryTiles - fullPasses * kWarps;
  const int first = fullPasses * kWarps;
  // Steps of fewer than 16 tokens have no mma shape here: one query tile left splits the KV tile
  // between two warps (the other two idle), two query tiles between two warps each.
  if (remainder == 1 || remainder == 2) {
    MmaPass<Dim, 16>(params, unit, walk, first);
  } else if (remainder == 3) {
    MmaPass<Dim, kTileTokens>(params, unit, walk, first);
  }
  CopyAsyncWait<0>();
  FinishUnit(params, unit, walk.scratch);
}

// ---------------------------------------------------------------------------------------------
// CUDA-core kernel

__device__ __forceinline__ float LoadAsFloat(const float* data, size_t index) { return __ldg(data + index); }
__device__ __forceinline__ float LoadAsFloat(const half* data, size_t index) { return __half2float(data[index]); }

template <typename Element>
__global__ void __launch_bounds__(kThreads) TreeAttentionScalarKernel(const AttentionParams params) {
  __shared__ int scratch[kThreads + 1];
  AllowDependentLaunch();
  if (blockIdx.x >= static_cast<unsigned>(params.numUnits * params.numKvHeads)) {
    ZeroEmptyQueries(params);
    return;
  }
  const UnitView unit = ReadUnit(params, blockIdx.x / params.numKvHeads, blockIdx.x % params.numKvHeads);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int dim = params.headDim;
  const Element* keys = static_cast<const Element*>(params.k);
  const Element* values = static_cast<const Element*>(params.v);
  const size_t slotStride = static_cast<size_t>(params.numKvHeads) * dim;

  for (int unitRow = warp; unitRow < unit.rowCount; unitRow += kWarps) {
    const int chunkRow = unit.rowStart + unitRow;
    const int queryInChunk = chunkRow / params.group;
    const int head = unit.kvHead * params.group + (chunkRow - queryInChunk * params.group);
    const int query = params.chunkQueries[unit.queryStart + queryInChunk];
    const float* queryRow = params.q + (static_cast<size_t>(query) * params.numHeads + head) * dim;
    float queryValues[kScalarMaxPerLane];
    float accumulator[kScalarMaxPerLane];
#pragma unroll
    for (int part = 0; part < kScalarMaxPerLane; ++part) {
      const int d = lane + part * 32;
      queryValues[part] = d < dim ? __ldg(queryRow + d) * params.scaleLog2 : 0.0f;
      accumulator[part] = 0.0f;
    }
    float rowMax = -INFINITY;
    float rowSum = 0.0f;
    for (int token = 0; token < unit.numTokens; ++token) {
      if (!unit.fullyVisible && !TokenVisible(params, unit, token, queryInChunk)) continue;  // warp-uniform
      const size_t rowOffset =
          static_cast<size_t>(__ldg(params.tokenSlots + unit.tokenStart + token)) * slotStride + unit.kvHead * dim;
      float dot = 0.0f;
#pragma unroll
      for (int part = 0; part < kScalarMaxPerLane; ++part) {
        const int d = lane + part * 32;
        if (d < dim) dot += queryValues[part] * LoadAsFloat(keys, rowOffset + d);
      }
      for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      const float newMax = fmaxf(rowMax, dot);  // finite: dot is finite for finite inputs
      const float correction = exp2f(rowMax - newMax);
      const float weight = exp2f(dot - newMax);
      rowSum = rowSum * correction + weight;
#pragma unroll
      for (int part = 0; part < kScalarMaxPerLane; ++part) {
        const int d = lane + part * 32;
        if (d < dim) accumulator[part] = accumulator[part] * correction + weight * LoadAsFloat(values, rowOffset + d);
      }
      rowMax = newMax;
    }
    const RowTarget target = TargetOfRow(params, unit, chunkRow);
    // Empty-state guard: a row that saw no key writes o = 0, lse = -inf.
    const float inverse = rowSum > 0.0f ? 1.0f / rowSum : 0.0f;
#pragma unroll
    for (int part = 0; part < kScalarMaxPerLane; ++part) {
      const int d = lane + part * 32;
      if (d < dim) target.o[d] = accumulator[part] * inverse;
    }
    if (target.lse != nullptr && lane == 0) *target.lse = rowSum > 0.0f ? rowMax + log2f(rowSum) : -INFINITY;
  }
  FinishUnit(params, unit, scratch);
}

/** The second launch when the merge is not fused: one warp per (query with several partials, head). */
__global__ void __launch_bounds__(256) MergeKernel(const AttentionParams params) {
  const int item = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (item >= params.numMergeQueries * params.numHeads) {
    WaitForPrerequisiteGrid();
    return;
  }
  MergeQueryHead(params, __ldg(params.mergeQueries + item / params.numHeads), item % params.numHeads, threadIdx.x & 31,
                 WaitForAttention{});
}

}  // namespace

size_t MmaSharedBytes(int headDim, int ringStages) {
  const size_t ring = static_cast<size_t>(ringStages) * 2 * kTileTokens * headDim * sizeof(half);
  const size_t mergeScratch = headDim == 64 ? MmaMergeScratchBytes<64>() : MmaMergeScratchBytes<128>();
  return std::max(ring, mergeScratch) + (kThreads + 1) * sizeof(int);
}

int MmaRingStagesLimit(int headDim, size_t sharedBytes) {
  const size_t fixed = (kThreads + 1) * sizeof(int);
  const size_t stage = static_cast<size_t>(2) * kTileTokens * headDim * sizeof(half);
  if (sharedBytes <= fixed || MmaSharedBytes(headDim, 0) > sharedBytes) return 0;
  return static_cast<int>((sharedBytes - fixed) / stage);
}

bool MmaSupportsHeadDim(int headDim) { return headDim == 64 || headDim == 128; }

Status ConfigureAttentionKernels(size_t maxSharedBytes) {
  const int limit = static_cast<int>(maxSharedBytes);
  DEFT_CUDA_CHECK(cudaFuncSetAttribute(TreeAttentionMmaKernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  DEFT_CUDA_CHECK(cudaFuncSetAttribute(TreeAttentionMmaKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  return Status::Ok();
}

Status LaunchTreeAttention(const AttentionParams& params, KvType kvType, AttentionKernel kernel, cudaStream_t stream) {
  const long long unitBlocks = static_cast<long long>(params.numUnits) * params.numKvHeads;
  const long long blocks = unitBlocks + (params.numEmptyQueries > 0 ? 1 : 0);
  if (blocks == 0) return Status::Ok();
  if (blocks > 0x7fffffffLL) return Status::Invalid("the plan has too many work units for one launch");
  const dim3 grid(static_cast<unsigned>(blocks));
  const bool useMma = kernel != AttentionKernel::kScalar && kvType == KvType::kF16 && MmaSupportsHeadDim(params.headDim);
  if (kernel == AttentionKernel::kMma && !useMma) {
    return Status::Invalid("the tensor-core kernel needs fp16 KV and head dim 64 or 128");
  }
  if (useMma) {
    const size_t shared = MmaSharedBytes(params.headDim, params.ringStages);
    if (params.headDim == 128) {
      TreeAttentionMmaKernel<128><<<grid, kThreads, shared, stream>>>(params);
    } else {
      TreeAttentionMmaKernel<64><<<grid, kThreads, shared, stream>>>(params);
    }
  } else {
    if (params.headDim > 32 * kScalarMaxPerLane) return Status::Invalid("head dim above 256 is not supported");
    if (kvType == KvType::kF16) {
      TreeAttentionScalarKernel<half><<<grid, kThreads, 0, stream>>>(params);
    } else {
      TreeAttentionScalarKernel<float><<<grid, kThreads, 0, stream>>>(params);
    }
  }
  DEFT_CUDA_CHECK(cudaGetLastError());
  if (params.fuseMerge == 0 && params.numMergeQueries > 0) {
    const long long items = static_cast<long long>(params.numMergeQueries) * params.numHeads;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned>((items + 7) / 8));
    config.blockDim = dim3(256);
    config.dynamicSmemBytes = 0;
    config.stream = stream;
    // Programmatic dependent launch: the merge's blocks start as the attention launch's last blocks run
    // (each attention CTA allows it on entry) and wait in griddepcontrol.wait for its writes.
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = params.dependentLaunch != 0 ? 1 : 0;
    DEFT_CUDA_CHECK(cudaLaunchKernelEx(&config, MergeKernel, params));
    DEFT_CUDA_CHECK(cudaGetLastError());
  }
  return Status::Ok();
}

}  // namespace deft
