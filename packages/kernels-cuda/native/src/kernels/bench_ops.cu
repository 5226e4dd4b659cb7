// Measurement kernels: an L2 flush (read a large buffer), the read-once floor (stream exactly the
// KV rows a plan reads, once, in plan order, and discard them), its per-head form (the same bytes read
// the way the attention kernels read them: one CTA per KV head and token range), a copy kernel and an
// empty kernel.
#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"

namespace deft {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr unsigned kNeverSeen = 0x9e3779b9u;

__device__ __forceinline__ unsigned Fold(uint4 value) { return value.x ^ value.y ^ value.z ^ value.w; }

__global__ void __launch_bounds__(kThreads) FlushKernel(const uint4* data, size_t count, unsigned* sink) {
  unsigned folded = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; index + (kUnroll - 1) * stride < count; index += kUnroll * stride) {
    uint4 values[kUnroll];
#pragma unroll
    for (int step = 0; step < kUnroll; ++step) values[step] = data[index + step * stride];
#pragma unroll
    for (int step = 0; step < kUnroll; ++step) folded ^= Fold(values[step]);
  }
  for (; index < count; index += stride) folded ^= Fold(data[index]);
  if (folded == kNeverSeen) *sink = folded;  // keeps the loads alive; practically never taken
}

/**
 * Reads K and V vectors `offsetOf(item)` for items `first, first + stride, ...` below `total` (four loads of
 * each in flight) and folds them into one word, so the loads stay alive.
 */
template <typename OffsetOf>
__device__ __forceinline__ unsigned FoldKv(const uint4* keys, const uint4* values, size_t first, size_t total,
                                           size_t stride, OffsetOf offsetOf) {
  unsigned folded = 0;
  size_t index = first;
  for (; index + (kUnroll - 1) * stride < total; index += kUnroll * stride) {
    uint4 loaded[2 * kUnroll];
#pragma unroll
    for (int step = 0; step < kUnroll; ++step) {
      const size_t offset = offsetOf(index + step * stride);
      loaded[2 * step] = keys[offset];
      loaded[2 * step + 1] = values[offset];
    }
#pragma unroll
    for (int step = 0; step < 2 * kUnroll; ++step) folded ^= Fold(loaded[step]);
  }
  for (; index < total; index += stride) {
    const size_t offset = offsetOf(index);
    folded ^= Fold(keys[offset]) ^ Fold(values[offset]);
  }
  return folded;
}

/** Row `token` of the plan: K and V rows of all KV heads of `slots[token]`, `vectorsPerRow` x 16 bytes each. */
__global__ void __launch_bounds__(kThreads) ReadOnceKernel(const uint4* keys, const uint4* values, const int* slots,
                                                           int count, int vectorsPerRow, unsigned* sink) {
  const size_t total = static_cast<size_t>(count) * vectorsPerRow;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const unsigned folded =
      FoldKv(keys, values, blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x, total, stride, [&](size_t item) {
        const size_t token = item / vectorsPerRow;
        return static_cast<size_t>(__ldg(slots + token)) * vectorsPerRow + (item - token * vectorsPerRow);
      });
  if (folded == kNeverSeen) *sink = folded;
}

/**
 * The read-once pass read as the attention kernels read it: CTA `b` streams KV head `b % numKvHeads` of
 * tokens `[(b / numKvHeads) * tokensPerBlock, + tokensPerBlock)` of the list (`vectorsPerHead` x 16 bytes of
 * K and of V per token), so the CTAs of one token range and different heads are adjacent in launch order.
 */
__global__ void __launch_bounds__(kThreads) ReadOncePerHeadKernel(const uint4* keys, const uint4* values,
                                                                  const int* slots, int count, int numKvHeads,
                                                                  int vectorsPerHead, int tokensPerBlock,
                                                                  unsigned* sink) {
  const int head = blockIdx.x % numKvHeads;
  const int first = (blockIdx.x / numKvHeads) * tokensPerBlock;
  const int tokens = min(tokensPerBlock, count - first);
  const size_t rowVectors = static_cast<size_t>(numKvHeads) * vectorsPerHead;
  const unsigned folded =
      FoldKv(keys, values, threadIdx.x, static_cast<size_t>(tokens) * vectorsPerHead, kThreads, [&](size_t item) {
        const size_t token = item / vectorsPerHead;
        return static_cast<size_t>(__ldg(slots + first + token)) * rowVectors +
               static_cast<size_t>(head) * vectorsPerHead + (item - token * vectorsPerHead);
      });
  if (folded == kNeverSeen) *sink = folded;
}

__global__ void __launch_bounds__(kThreads) CopyKernel(uint4* target, const uint4* source, size_t count) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; index + (kUnroll - 1) * stride < count; index += kUnroll * stride) {
    uint4 values[kUnroll];
#pragma unroll
    for (int step = 0; step < kUnroll; ++step) values[step] = source[index + step * stride];
#pragma unroll
    for (int step = 0; step < kUnroll; ++step) target[index + step * stride] = values[step];
  }
  for (; index < count; index += stride) target[index] = source[index];
}

__global__ void EmptyKernel() {}

/** Holds the stream for `nanoseconds` on the global timer (one thread). */
__global__ void SpinKernel(unsigned long long nanoseconds) {
  unsigned long long start = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  for (;;) {
    unsigned long long now = 0;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start >= nanoseconds) break;
    __nanosleep(1000);
  }
}

/**
 * fp16 tensor-core rate: every warp runs `iterations` x 8 independent m16n8k16 mma.sync on registers
 * (f32 accumulation), no memory traffic; one value per warp goes to `sink` so nothing is elided.
 */
__global__ void MmaRateKernel(int iterations, float* sink) {
  unsigned a = 0x3c003c00u ^ threadIdx.x;
  unsigned b = 0x3c003c00u ^ blockIdx.x;
  float c[8][4] = {};
  for (int iteration = 0; iteration < iterations; ++iteration) {
#pragma unroll
    for (int chain = 0; chain < 8; ++chain) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
          "{%0, %1, %2, %3};"
          : "+f"(c[chain][0]), "+f"(c[chain][1]), "+f"(c[chain][2]), "+f"(c[chain][3])
          : "r"(a), "r"(b), "r"(a), "r"(b), "r"(a), "r"(b));
    }
  }
  float total = 0.0f;
#pragma unroll
  for (int chain = 0; chain < 8; ++chain) total += c[chain][0] + c[chain][1] + c[chain][2] + c[chain][3];
  if (total == 1234.5f) sink[blockIdx.x] = total;
}

unsigned PersistentGrid(int multiprocessors, size_t work) {
  const size_t wanted = (work + kThreads - 1) / kThreads;
  const size_t limit = static_cast<size_t>(multiprocessors > 0 ? multiprocessors : 1) * 8;
  return static_cast<unsigned>(wanted < 1 ? 1 : (wanted < limit ? wanted : limit));
}

}  // namespace

Status LaunchFlush(const void* data, size_t bytes, unsigned* sink, int multiprocessors, cudaStream_t stream) {
  if (bytes % 16 != 0) return Status::Invalid("flush buffer size must be a multiple of 16 bytes");
  const size_t count = bytes / 16;
  FlushKernel<<<PersistentGrid(multiprocessors, count), kThreads, 0, stream>>>(static_cast<const uint4*>(data), count,
                                                                              sink);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchReadOnce(const KvLayer& layer, const int* slots, int count, int numKvHeads, bool perHead, unsigned* sink,
                      int multiprocessors, cudaStream_t stream) {
  const size_t rowBytes = static_cast<size_t>(layer.rowElements) * (layer.type == KvType::kF16 ? 2 : 4);
  if (rowBytes % 16 != 0) return Status::Invalid("read-once needs token rows of a multiple of 16 bytes");
  if (count <= 0) return Status::Ok();
  const int vectorsPerRow = static_cast<int>(rowBytes / 16);
  if (perHead) {
    if (numKvHeads < 1 || vectorsPerRow % numKvHeads != 0) {
      return Status::Invalid("per-head read-once needs head rows of a multiple of 16 bytes");
    }
    // About four CTAs per multiprocessor over all heads, at least 16 tokens each.
    const long long blocksWanted = static_cast<long long>(multiprocessors > 0 ? multiprocessors : 1) * 4;
    const long long perHeadBlocks = std::max(1LL, blocksWanted / numKvHeads);
    const int tokensPerBlock = static_cast<int>(std::max(16LL, (count + perHeadBlocks - 1) / perHeadBlocks));
    const long long ranges = (count + tokensPerBlock - 1) / tokensPerBlock;
    ReadOncePerHeadKernel<<<static_cast<unsigned>(ranges * numKvHeads), kThreads, 0, stream>>>(
        static_cast<const uint4*>(layer.k), static_cast<const uint4*>(layer.v), slots, count, numKvHeads,
        vectorsPerRow / numKvHeads, tokensPerBlock, sink);
    DEFT_CUDA_CHECK(cudaGetLastError());
    return Status::Ok();
  }
  const size_t total = static_cast<size_t>(count) * vectorsPerRow;
  ReadOnceKernel<<<PersistentGrid(multiprocessors, total), kThreads, 0, stream>>>(
      static_cast<const uint4*>(layer.k), static_cast<const uint4*>(layer.v), slots, count, vectorsPerRow, sink);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchEmpty(cudaStream_t stream) {
  EmptyKernel<<<1, 32, 0, stream>>>();
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchSpin(unsigned long long nanoseconds, cudaStream_t stream) {
  SpinKernel<<<1, 1, 0, stream>>>(nanoseconds);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchMmaRate(int blocks, int iterations, float* sink, cudaStream_t stream) {
  MmaRateKernel<<<blocks, kMmaRateThreads, 0, stream>>>(iterations, sink);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchCopy(void* target, const void* source, size_t bytes, int multiprocessors, cudaStream_t stream) {
  if (bytes % 16 != 0) return Status::Invalid("copy size must be a multiple of 16 bytes");
  const size_t count = bytes / 16;
  CopyKernel<<<PersistentGrid(multiprocessors, count), kThreads, 0, stream>>>(static_cast<uint4*>(target),
                                                                             static_cast<const uint4*>(source), count);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

}  // namespace deft
