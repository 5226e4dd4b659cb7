// Paged KV maintenance: scatter new token rows into slots, gather rows back, copy whole pages
// (copy-on-write), and fill. A token row of one layer is `numKvHeads * headDim` contiguous elements.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"

namespace deft {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float ToFloat(float value) { return value; }
__device__ __forceinline__ float ToFloat(half value) { return __half2float(value); }
template <typename Target>
__device__ __forceinline__ Target FromFloat(float value);
template <>
__device__ __forceinline__ float FromFloat<float>(float value) { return value; }
template <>
__device__ __forceinline__ half FromFloat<half>(float value) { return __float2half_rn(value); }

template <typename Target, typename Source>
__global__ void WriteKvKernel(Target* keys, Target* values, const int* slots, int count, int rowElements,
                              const Source* sourceKeys, const Source* sourceValues) {
  const size_t total = static_cast<size_t>(count) * rowElements;
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t token = index / rowElements;
    const size_t element = index - token * rowElements;
    const size_t target = static_cast<size_t>(slots[token]) * rowElements + element;
    keys[target] = FromFloat<Target>(ToFloat(sourceKeys[index]));
    values[target] = FromFloat<Target>(ToFloat(sourceValues[index]));
  }
}

template <typename Source>
__global__ void ReadKvKernel(const Source* keys, const Source* values, const int* slots, int count, int rowElements,
                             float* targetKeys, float* targetValues) {
  const size_t total = static_cast<size_t>(count) * rowElements;
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t token = index / rowElements;
    const size_t element = index - token * rowElements;
    const size_t source = static_cast<size_t>(slots[token]) * rowElements + element;
    targetKeys[index] = ToFloat(keys[source]);
    targetValues[index] = ToFloat(values[source]);
  }
}

template <typename Word>
__global__ void CopyPagesKernel(unsigned char* base, size_t regionBytes, size_t pageBytes, const int* source,
                                const int* target, int count) {
  // blockIdx.y: region (layer x {K, V}); grid-stride over (page pair, word) in x.
  unsigned char* region = base + blockIdx.y * regionBytes;
  const size_t wordsPerPage = pageBytes / sizeof(Word);
  const size_t total = wordsPerPage * count;
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t pair = index / wordsPerPage;
    const size_t word = index - pair * wordsPerPage;
    const Word* from = reinterpret_cast<const Word*>(region + static_cast<size_t>(source[pair]) * pageBytes);
    Word* to = reinterpret_cast<Word*>(region + static_cast<size_t>(target[pair]) * pageBytes);
    to[word] = from[word];
  }
}

__global__ void FillF32Kernel(float* data, size_t count, float value) {
  for (size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; index < count;
       index += static_cast<size_t>(gridDim.x) * blockDim.x) {
    data[index] = value;
  }
}

unsigned GridFor(size_t work) {
  const size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(blocks, 65535)));
}

}  // namespace

Status LaunchWriteKv(const KvLayer& layer, const int* slots, int count, const void* k, const void* v, KvType sourceType,
                     cudaStream_t stream) {
  if (count <= 0) return Status::Ok();
  const unsigned grid = GridFor(static_cast<size_t>(count) * layer.rowElements);
  if (layer.type == KvType::kF16) {
    if (sourceType == KvType::kF16) {
      WriteKvKernel<half, half><<<grid, kThreads, 0, stream>>>(static_cast<half*>(layer.k), static_cast<half*>(layer.v),
                                                                 slots, count, layer.rowElements,
                                                                 static_cast<const half*>(k), static_cast<const half*>(v));
    } else {
      WriteKvKernel<half, float><<<grid, kThreads, 0, stream>>>(static_cast<half*>(layer.k), static_cast<half*>(layer.v),
                                                                  slots, count, layer.rowElements,
                                                                  static_cast<const float*>(k), static_cast<const float*>(v));
    }
  } else {
    if (sourceType == KvType::kF16) {
      WriteKvKernel<float, half><<<grid, kThreads, 0, stream>>>(static_cast<float*>(layer.k), static_cast<float*>(layer.v),
                                                                  slots, count, layer.rowElements,
                                                                  static_cast<const half*>(k), static_cast<const half*>(v));
    } else {
      WriteKvKernel<float, float><<<grid, kThreads, 0, stream>>>(
          static_cast<float*>(layer.k), static_cast<float*>(layer.v), slots, count, layer.rowElements,
          static_cast<const float*>(k), static_cast<const float*>(v));
    }
  }
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchReadKv(const KvLayer& layer, const int* slots, int count, float* k, float* v, cudaStream_t stream) {
  if (count <= 0) return Status::Ok();
  const unsigned grid = GridFor(static_cast<size_t>(count) * layer.rowElements);
  if (layer.type == KvType::kF16) {
    ReadKvKernel<half><<<grid, kThreads, 0, stream>>>(static_cast<const half*>(layer.k), static_cast<const half*>(layer.v),
                                                       slots, count, layer.rowElements, k, v);
  } else {
    ReadKvKernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(layer.k),
                                                        static_cast<const float*>(layer.v), slots, count,
                                                        layer.rowElements, k, v);
  }
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchCopyPages(void* base, size_t regionBytes, int regions, size_t pageBytes, const int* source, const int* target,
                       int count, cudaStream_t stream) {
  if (count <= 0 || regions <= 0) return Status::Ok();
  if (regions > 65535) return Status::Invalid("too many layers for one page copy");
  unsigned char* bytes = static_cast<unsigned char*>(base);
  const bool wide = pageBytes % 16 == 0 && regionBytes % 16 == 0;
  const size_t words = wide ? pageBytes / 16 : pageBytes / 2;
  const dim3 grid(GridFor(words * count), static_cast<unsigned>(regions));
  if (wide) {
    CopyPagesKernel<uint4><<<grid, kThreads, 0, stream>>>(bytes, regionBytes, pageBytes, source, target, count);
  } else {
    CopyPagesKernel<uint16_t><<<grid, kThreads, 0, stream>>>(bytes, regionBytes, pageBytes, source, target, count);
  }
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

Status LaunchFillF32(float* data, size_t count, float value, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  FillF32Kernel<<<GridFor(count), kThreads, 0, stream>>>(data, count, value);
  DEFT_CUDA_CHECK(cudaGetLastError());
  return Status::Ok();
}

}  // namespace deft
