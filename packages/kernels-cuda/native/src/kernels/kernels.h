// Host-callable launchers of every kernel of the addon, with the plain structs they take.
// Every launcher enqueues on the given stream, checks the launch, and returns a Status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace deft {

enum class KvType : int { kF32 = 0, kF16 = 1 };

/** Which tree-attention kernel a plan runs. */
enum class AttentionKernel : int {
  /** Tensor-core kernel where the head dimension allows it, else the CUDA-core kernel. */
  kAuto = 0,
  /** Tensor-core (mma.sync m16n8k16) kernel; fp16 KV and head dim 64 or 128 only. */
  kMma = 1,
  /** CUDA-core kernel (any head dim up to 256, f32 or fp16 KV). */
  kScalar = 2,
  /**
   * Hopper warpgroup-MMA (wgmma) task kernel, compute capability 9.0 only (the sm_90a build); fp16 KV,
   * head dim 128, task executor. Tasks of fewer than 33 rows run its mma.sync bodies.
   */
  kWgmma = 3,
};

/**
 * An execution chunk: a run of the plan's chunks that the backend computes as one (consecutive chunks
 * with the same queries, all fully visible, or a single chunk with its mask). Its tokens are
 * `tokenSlots[tokenStart ..< tokenStart + numTokens]`, its queries `chunkQueries[queryStart ..< +numQueries]`,
 * and its j-th query's partial state goes to slot `partialStart + j`.
 */
struct ExecChunk {
  int tokenStart;
  int numTokens;
  int queryStart;
  int numQueries;
  int partialStart;
  int maskOffset;    // into mask: [segments, ceil(numQueries / 32)] words (a single plan chunk)
  int fullyVisible;  // 1: skip the mask
  int reserved;
};

/**
 * A work unit: rows `[rowStart, rowStart + rowCount)` (row = query * group + head in group) of one
 * execution chunk, with the chunk's fields copied in so a CTA reads its whole unit in one load.
 */
struct AttentionUnit {
  int tokenStart;
  int numTokens;
  int queryStart;
  int numQueries;
  int partialStart;
  int maskOffset;
  int fullyVisible;
  int rowStart;
  int rowCount;
  int execChunk;
  int reserved0;
  int reserved1;
};

/**
 * Everything one launch of tree attention reads and writes. The schedule's arrays live in one device
 * buffer (see src/plan/pack-plan.ts); the partial buffers and counters belong to the context.
 */
struct AttentionParams {
  const int* tokenSlots;          // [numTokens] the plan's
  const int* tokenSegments;       // [numTokens] the plan's
  const int* chunkQueries;        // [plan numPartials] the plan's
  const uint32_t* mask;           // [maskWords] the plan's
  const AttentionUnit* units;     // [numUnits], heaviest first
  const int* queryPartialIndptr;  // [numQueries + 1] over execution partial slots
  const int* queryPartials;       // [numExecPartials] execution slots of each query, in chunk order
  const int* emptyQueries;        // [numEmptyQueries] queries that see no token
  const int* mergeQueries;        // [numMergeQueries] queries with several partial states
  int numUnits;
  int numEmptyQueries;
  int numMergeQueries;
  /** 1: the CTA completing a query's partials merges them (counters); 0: a second launch merges. */
  int fuseMerge;

  const void* k;                  // layer's K: [numSlots, numKvHeads, headDim]
  const void* v;                  // layer's V: [numSlots, numKvHeads, headDim]
  const float* q;                 // [numQueries, numHeads, headDim]
  float* out;                     // [numQueries, numHeads, headDim]
  float* partialO;                // [numExecPartials, numHeads, headDim]
  float* partialLse;              // [numExecPartials, numHeads], base 2
  unsigned* counters;             // [numQueries, numKvHeads], zero between launches

  int numHeads;
  int numKvHeads;
  int group;                      // numHeads / numKvHeads
  int headDim;
  float scaleLog2;                // scale * log2(e)
  int ringStages;                 // KV tiles the tensor-core kernel keeps in shared memory
  /** 1: the merge launch uses programmatic dependent launch (sm_90+): it starts while attention ends. */
  int dependentLaunch;
};

/**
 * A mask-free task of the task executor (v7; see src/plan/build-tasks.ts): every row of the task sees
 * every one of its tokens. Tokens `taskSlots[slotStart ..< slotStart + numTokens]`, rows
 * `taskRows[rowStart ..< rowStart + rowCount]`.
 */
struct AttentionTask {
  int slotStart;
  int numTokens;
  int rowStart;
  int rowCount;
};

/**
 * One row of a task: for KV head `h` (group `g` query heads per KV head) it reads
 * `q[(qRow + h * g) * headDim ..]` and writes the output at the same offset when `partialRow < 0`,
 * else `partialO[(partialRow + h * g) * headDim ..]` and `partialLse[partialRow + h * g]` (base 2).
 */
struct TaskRow {
  int qRow;
  int partialRow;
};

/** Everything one launch of the task executor reads and writes (two launches: tasks, then merge + suffixes). */
struct TaskParams {
  const AttentionTask* tasks;     // [numTasks], costliest first
  const int* taskSlots;           // [numTaskSlots]
  const TaskRow* taskRows;        // [numTaskRows]
  const int* queryPartialIndptr;  // [numQueries + 1]
  const int* queryPartials;       // [numPartials] partial slots of each query, in merge order
  const int* suffixIndptr;        // [numQueries + 1]
  const int* suffixSlots;         // [numSuffixSlots] KV slots each merge query attends to on CUDA cores
  const int* mergeQueries;        // [numMergeQueries] queries the merge kernel writes
  int numTasks;
  int numMergeQueries;

  const void* k;                  // layer's K: [numSlots, numKvHeads, headDim]
  const void* v;                  // layer's V: [numSlots, numKvHeads, headDim]
  const float* q;                 // [numQueries, numHeads, headDim]
  float* out;                     // [numQueries, numHeads, headDim]
  float* partialO;                // [numPartials, numHeads, headDim], owned by the plan
  float* partialLse;              // [numPartials, numHeads], base 2, owned by the plan

  int numHeads;
  int numKvHeads;
  int group;                      // numHeads / numKvHeads
  int headDim;
  float scaleLog2;                // scale * log2(e)
  /** 1: the merge launch uses programmatic dependent launch (sm_90+). */
  int dependentLaunch;
  /** Fewest rows of a task that the wgmma kernel runs on wgmma (33: three or more 16-row query tiles). */
  int wgmmaMinRows;
  /** Multiprocessors of the device (sizes the merge launch). */
  int multiprocessors;
  /**
   * Null, or (profiling only) `[numTasks * numKvHeads, 3]`: each attention CTA's start and end on the
   * global timer (ns) and its multiprocessor. Costs a barrier per CTA; never set by a normal launch.
   */
  unsigned long long* blockProfile;
};

/** Raises the dynamic shared-memory limit of the task kernels on the current device. */
Status ConfigureTaskKernels();
/** Shared-memory bytes of a tensor-core task kernel (kMma or kWgmma) at a head dim. */
size_t TaskSharedBytes(int headDim, AttentionKernel kernel);
/** Ring stages of the tensor-core task kernels. */
int TaskRingStages();
/** Enqueues one layer of tree attention with the task executor. */
Status LaunchTaskAttention(const TaskParams& params, KvType kvType, AttentionKernel kernel, cudaStream_t stream);

/** Shared-memory bytes of the tensor-core kernel for a head dim and ring depth. */
size_t MmaSharedBytes(int headDim, int ringStages);
/** Deepest ring of KV tiles the tensor-core kernel can keep within `sharedBytes` per block. */
int MmaRingStagesLimit(int headDim, size_t sharedBytes);
/** True when the tensor-core kernel supports this head dim. */
bool MmaSupportsHeadDim(int headDim);
/** Raises the dynamic shared-memory limit of the attention kernels on the current device. */
Status ConfigureAttentionKernels(size_t maxSharedBytes);
/** Enqueues one layer of tree attention. */
Status LaunchTreeAttention(const AttentionParams& params, KvType kvType, AttentionKernel kernel, cudaStream_t stream);

/** KV layout of one layer: K and V each `[numSlots, numKvHeads, headDim]`. */
struct KvLayer {
  void* k;
  void* v;
  KvType type;
  int rowElements;  // numKvHeads * headDim
};

/** Scatters `count` token rows from f32 / f16 sources into the slots of a layer. */
Status LaunchWriteKv(const KvLayer& layer, const int* slots, int count, const void* k, const void* v, KvType sourceType,
                     cudaStream_t stream);
/** Gathers `count` token rows of a layer into f32 destinations. */
Status LaunchReadKv(const KvLayer& layer, const int* slots, int count, float* k, float* v, cudaStream_t stream);
/** Copies `count` pages source[i] -> target[i] of `regions` contiguous regions (layers x {K, V}). */
Status LaunchCopyPages(void* base, size_t regionBytes, int regions, size_t pageBytes, const int* source, const int* target,
                       int count, cudaStream_t stream);
/** Fills `count` f32 values with `value`. */
Status LaunchFillF32(float* data, size_t count, float value, cudaStream_t stream);

/** Reads `bytes` (a multiple of 16) and discards them: evicts the L2 cache. */
Status LaunchFlush(const void* data, size_t bytes, unsigned* sink, int multiprocessors, cudaStream_t stream);
/**
 * Streams the K and V rows (all KV heads) of `count` slots of a layer once and discards them: whole rows
 * spread over the device, or (`perHead`) one CTA per KV head and token range, as the attention kernels read.
 */
Status LaunchReadOnce(const KvLayer& layer, const int* slots, int count, int numKvHeads, bool perHead, unsigned* sink,
                      int multiprocessors, cudaStream_t stream);
/** Threads per block of the tensor-core rate kernel. */
constexpr int kMmaRateThreads = 256;
/**
 * The fp16 tensor-core rate kernel: `blocks` x 8 warps each run `iterations` x 8 mma.sync m16n8k16
 * (4096 FLOPs each) on registers. `sink` holds at least `blocks` floats.
 */
Status LaunchMmaRate(int blocks, int iterations, float* sink, cudaStream_t stream);
/** Holds the stream for `nanoseconds`: work enqueued behind it queues up (host enqueue timed apart from the GPU). */
Status LaunchSpin(unsigned long long nanoseconds, cudaStream_t stream);
/** An empty kernel: measures launch latency. */
Status LaunchEmpty(cudaStream_t stream);
/** Copies `bytes` (a multiple of 16) with a 16-byte-per-thread copy kernel. */
Status LaunchCopy(void* target, const void* source, size_t bytes, int multiprocessors, cudaStream_t stream);

// --- Model ops (model_ops.cu) -----------------------------------------------------------------

/** Most matmuls of one input launched together (q / k / v, gate / up). */
constexpr int kMaxMatmulGroup = 4;

/**
 * Operands of a group of matmuls of one input, `out[i][m, n[i]] = x[m, k] · weight[i][n[i], k]ᵀ`
 * (row-major), `count` of them (1 for a plain matmul), their weights of one type.
 */
struct MatmulArgs {
  const float* x;
  /** `x` as fp16 (`[m, k]`), set for the tensor-core kernel (see MatmulUsesTensorCores), else null. */
  const void* x16;
  KvType weightType;
  int count;
  const void* weight[kMaxMatmulGroup];
  float* out[kMaxMatmulGroup];
  int n[kMaxMatmulGroup];
  /** Split-K partial sums `[splits, m, n]` of one matmul, when splits > 1 without `clusterReduce`. */
  float* partial;
  /** sm_90: the splits of a tile add their products through distributed shared memory (splits <= 8). */
  bool clusterReduce;
  int m;
  int k;
};

/** How the tensor-core matmul divides K among CTAs. */
struct MatmulSplit {
  int splits = 1;
  int splitColumns = 0;
  /** Tokens per CTA of the tiled kernel (64 or 128; both operands staged), or 0 for the row kernel. */
  int tokenTile = 0;
  /** The tiled kernel on warpgroup MMA (sm_90a) rather than mma.sync. */
  bool wgmma = false;
};

/** Rows from which a tensor-core matmul uses the tiled kernel (the context's default). */
constexpr int kDefaultTiledMatmulRows = 40;

/** True when a matmul runs on tensor cores: fp16 weights and K a multiple of 32. */
bool MatmulUsesTensorCores(KvType weightType, int k);
/**
 * The kernel and split-K of a tensor-core matmul: the tiled kernel from `tiledFromRows` rows and for large
 * weights at any row count, else the row kernel; at most
 * `maxPartialFloats` partial sums, and with `clusterReduce` (sm_90) at most 8 splits whose clusters the
 * device holds at once, else 16. `wgmma`: the tiled kernel runs on warpgroup MMA (the sm_90a build on a
 * compute capability 9.0 device).
 */
MatmulSplit ChooseMatmulSplit(int m, int k, int n, int multiprocessors, size_t maxPartialFloats, bool clusterReduce,
                              int tiledFromRows, bool wgmma);
/**
 * Enqueues a matmul group (tensor cores when `args.x16` is set, else CUDA cores): one launch for the whole
 * group where the split-K sum needs no second launch, else one per matmul. `split` is chosen for the
 * group's total rows.
 */
Status LaunchMatmul(const MatmulArgs& args, const MatmulSplit& split, cudaStream_t stream);
/** Converts `count` f32 values to fp16. */
Status LaunchToHalf(const float* x, void* out, size_t count, cudaStream_t stream);
/** `out[r, :] = table[rows[r], :]` as f32, for an f32 or fp16 table `[*, width]`. */
Status LaunchGatherRows(const void* table, KvType tableType, const int* rows, int count, float* out, int width,
                        cudaStream_t stream);
Status LaunchAdd(const float* a, const float* b, float* out, size_t count, cudaStream_t stream);
/** SwiGLU; `out16` (nullable) also receives the result as fp16 (the next matmul's input). */
Status LaunchSwiglu(const float* gate, const float* up, float* out, void* out16, size_t count, cudaStream_t stream);
/** Seeded uniform values in [low, high), f32 or fp16 (a counter-based generator: the same for any launch shape). */
Status LaunchFillUniform(void* out, KvType type, size_t count, unsigned long long seed, float low, float high,
                         cudaStream_t stream);
/**
 * RMSNorm of `rows` rows of `width` with an f32 or fp16 weight `[width]`; `out16` (nullable) also receives the
 * result as fp16 (the next matmul's input). With `residual` (nullable), `x += residual` first (written back)
 * and the norm is the sum's.
 */
Status LaunchRmsNorm(float* x, const float* residual, const void* weight, KvType weightType, float* out, void* out16,
                     int rows, int width, float epsilon, cudaStream_t stream);
/** Softmax of `x / temperature` per row, or (`logarithm`) log-softmax. */
Status LaunchSoftmax(const float* x, float* out, int rows, int columns, float temperature, bool logarithm,
                     cudaStream_t stream);
/** The `k` largest values of each row with their columns, largest first (ties: smaller column; NaN as -inf). */
Status LaunchTopK(const float* x, int rows, int columns, int k, int* indices, float* values, cudaStream_t stream);
/** RoPE in place on `[rows, numHeads, headDim]`; `half` pairs (i, i + headDim/2), else (2i, 2i+1). */
Status LaunchRope(float* x, const int* positions, int rows, int numHeads, int headDim, double theta, bool half,
                  const float* factors, cudaStream_t stream);
/** Copies slot rows `source[i] -> target[i]` (rows of `rowBytes`) in `regions` contiguous regions. */
Status LaunchCopySlots(void* base, size_t regionBytes, int regions, size_t rowBytes, const int* source,
                       const int* target, int count, cudaStream_t stream);

}  // namespace deft
