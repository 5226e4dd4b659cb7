// The addon's plain C++ API: contexts (a device and a stream), device buffers, paged KV storages,
// prepared plans and events, all named by integer handles. Every function returns a Status and never
// throws; handles that do not name a live object of the right kind give a kNotFound status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/kernels.h"

namespace deft {

using Handle = uint32_t;

struct DeviceProbe {
  int deviceCount = 0;
  int error = 0;  // cudaError_t of cudaGetDeviceCount
  std::string errorName;
  std::string errorMessage;
  int driverVersion = 0;
  int runtimeVersion = 0;
};

struct DeviceInfo {
  std::string name;
  int ordinal = 0;
  int multiprocessors = 0;
  int computeMajor = 0;
  int computeMinor = 0;
  size_t l2Bytes = 0;
  size_t sharedPerBlockOptin = 0;
  size_t totalMemory = 0;
  int ringStagesLimit = 0;  // KV tiles the tensor-core kernel can keep at head dim 128
};

struct StorageDescriptor {
  int numLayers = 0;
  int numPages = 0;
  int pageSize = 0;
  int numKvHeads = 0;
  int headDim = 0;
  KvType type = KvType::kF16;
};

/** Field indices of the Int32Array header that describes a packed schedule (see src/plan/pack-plan.ts). */
enum PlanHeaderField : int {
  kHeaderNumExecChunks = 0,
  kHeaderNumQueries,
  kHeaderNumExecPartials,
  kHeaderNumUnits,
  kHeaderNumEmptyQueries,
  kHeaderNumHeads,
  kHeaderNumKvHeads,
  kHeaderHeadDim,
  kHeaderKvType,
  kHeaderPageSize,
  kHeaderMaxSlot,
  kHeaderResidentTiles,
  kHeaderKernel,
  kHeaderNumTokens,
  kHeaderMaskWords,
  kHeaderNumChunkQueries,
  // byte offsets into the packed buffer (16-byte aligned)
  kHeaderOffsetTokenSlots,
  kHeaderOffsetTokenSegments,
  kHeaderOffsetChunkQueries,
  kHeaderOffsetMask,
  kHeaderOffsetExecChunks,
  kHeaderOffsetUnits,
  kHeaderOffsetQueryPartialIndptr,
  kHeaderOffsetQueryPartials,
  kHeaderOffsetEmptyQueries,
  kHeaderOffsetMergeQueries,
  kHeaderNumMergeQueries,
  kHeaderFuseMerge,
  kHeaderTotalBytes,
  // the task executor (v7): 0 work units over the plan's chunks, 1 mask-free tasks
  kHeaderExecutor,
  kHeaderNumTasks,
  kHeaderNumTaskRows,
  kHeaderNumTaskSlots,
  kHeaderNumSuffixSlots,
  kHeaderOffsetTasks,
  kHeaderOffsetTaskSlots,
  kHeaderOffsetTaskRows,
  kHeaderOffsetSuffixIndptr,
  kHeaderOffsetSuffixSlots,
  kHeaderFieldCount,
};

struct PlanSummary {
  int ringStages = 0;
  int kernel = 0;  // the kernel the plan will run: 1 tensor-core, 2 CUDA-core
  size_t sharedBytes = 0;
};

DeviceProbe Probe();

Status CreateContext(int ordinal, Handle* context);
Status DestroyContext(Handle context);
Status GetDeviceInfo(Handle context, DeviceInfo* info);
Status Synchronize(Handle context);

Status Allocate(Handle context, size_t bytes, Handle* buffer);
Status FreeBuffer(Handle buffer);
Status BufferBytes(Handle buffer, size_t* bytes);
Status Upload(Handle buffer, size_t byteOffset, const void* data, size_t bytes);
Status UploadF32AsF16(Handle buffer, size_t elementOffset, const float* data, size_t count);
Status Download(Handle buffer, size_t byteOffset, void* data, size_t bytes);
Status DownloadF16AsF32(Handle buffer, size_t elementOffset, float* data, size_t count);
Status FillF32(Handle buffer, size_t elementOffset, size_t count, float value);
/** Device-to-device copy of `bytes`; `useKernel` copies with the 16-byte copy kernel instead of cudaMemcpyAsync. */
Status CopyBuffer(Handle target, Handle source, size_t bytes, bool useKernel);

Status CreateStorage(Handle context, const StorageDescriptor& descriptor, Handle* storage);
Status FreeStorage(Handle storage);

/** A K or V source of writeKV: host f32 values, or a device buffer of f32 / f16 values. */
struct KvSource {
  const float* host = nullptr;
  size_t hostCount = 0;  // values at `host`
  Handle buffer = 0;
  KvType bufferType = KvType::kF32;
};

Status WriteKv(Handle storage, int layer, const int* slots, int count, const KvSource& k, const KvSource& v);
Status ReadKv(Handle storage, int layer, const int* slots, int count, float* k, size_t kCount, float* v, size_t vCount);
Status CopyPages(Handle storage, const int* source, const int* target, int count);

Status PreparePlan(Handle context, const int32_t* header, const void* bytes, size_t size, Handle* plan,
                   PlanSummary* summary);
Status FreePlan(Handle plan);
Status TreeAttention(Handle plan, Handle storage, int layer, Handle q, Handle out, float scale);
/**
 * One layer of tree attention with the task executor, profiled: waits for it and writes each attention
 * CTA's multiprocessor, start and end (ns, relative to the earliest start) to `profile`
 * (`[numTasks * numKvHeads, 3]` doubles, CTA `b` = KV head `b % numKvHeads` of task `b / numKvHeads`).
 */
Status ProfileTreeAttention(Handle plan, Handle storage, int layer, Handle q, Handle out, float scale, double* profile,
                            size_t profileCount);

Status CreateEvent(Handle context, Handle* event);
Status DestroyEvent(Handle event);
Status RecordEvent(Handle event);
Status ElapsedMilliseconds(Handle start, Handle end, float* milliseconds);
Status FlushL2(Handle context, size_t bytes);
/** Uploads a validated list of slots of `storage` for ReadOnce. */
Status CreateSlotList(Handle storage, const int* slots, int count, Handle* list);
Status FreeSlotList(Handle list);
/** Streams the K and V rows of every slot of `list` once (in list order) and discards them. */
Status ReadOnce(Handle storage, int layer, Handle list, bool perHead);
Status EmptyKernel(Handle context);
/** Enqueues the fp16 tensor-core rate kernel (see LaunchMmaRate) on the context's stream. */
Status MmaRate(Handle context, int blocks, int iterations);
/** Enqueues a kernel that holds the context's stream for `nanoseconds`. */
Status Spin(Handle context, unsigned long long nanoseconds);

// --- Model ops: operands are buffers of one context, sizes checked against the buffers. ------------

enum class ElementwiseOp : int { kAdd = 0, kSwiglu = 1 };

/** `out[r, :] = table[rows[r], :]` as f32 (embedding, gatherRows); rows checked against `tableRows`. */
Status GatherRows(Handle table, KvType tableType, int tableRows, const int* rows, int count, Handle out, int width);
/**
 * `out[i][m, n[i]] = x[m, k] · weight[i][n[i], k]ᵀ` for `count` (1..kMaxMatmulGroup) matmuls of one input
 * and one weight type, launched together where they can be: tensor cores for fp16 weights with K a
 * multiple of 32. No `out[i]` may be `x`.
 */
Status Matmul(Handle x, const Handle* weights, KvType weightType, const Handle* outs, const int* n, int count, int m,
              int k);
/**
 * RMSNorm of each row of `x` `[rows, width]` into `out`; with a `residual` (not 0) first `x += residual`
 * (written back to `x`) and the norm of the sum, in one pass (`out` then aliases neither).
 */
Status RmsNorm(Handle x, Handle residual, Handle weight, KvType weightType, Handle out, int rows, int width,
               float epsilon);
/** RoPE in place; `factors` (`[headDim / 2]`) may be null. */
Status Rope(Handle x, const int* positions, int rows, int numHeads, int headDim, double theta, bool half,
            const float* factors);
Status Elementwise(ElementwiseOp op, Handle a, Handle b, Handle out, size_t count);
Status Softmax(Handle x, Handle out, int rows, int columns, float temperature, bool logarithm);
/** Waits: writes `[rows, k]` columns (and values, unless null) of each row's k largest values. */
Status TopK(Handle x, int rows, int columns, int k, int* indices, float* values);
/** Copies the K and V rows of slot `source[i]` to `target[i]` in every layer. */
Status CopySlots(Handle storage, const int* source, const int* target, int count);
/** Seeded uniform values in [low, high) over the first `count` elements of a buffer. */
Status FillUniform(Handle buffer, KvType type, size_t count, unsigned long long seed, float low, float high);
/** Seeded uniform values in [low, high) over every K and V element of a storage (benchmarks). */
Status FillStorageUniform(Handle storage, unsigned long long seed, float low, float high);

}  // namespace deft
