#include "runtime/runtime.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "runtime/half_convert.h"

namespace deft {

Status CudaFailure(cudaError_t error, const char* expression, const char* file, int line) {
  Status status;
  const bool noDevice = error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver ||
                        error == cudaErrorInitializationError || error == cudaErrorSystemDriverMismatch ||
                        error == cudaErrorCompatNotSupportedOnDevice || error == cudaErrorInvalidDevice;
  status.code = noDevice ? StatusCode::kNoDevice : StatusCode::kCuda;
  status.cudaError = static_cast<int>(error);
  const char* fileName = std::strrchr(file, '/');
  status.message = std::string(cudaGetErrorName(error)) + " (" + std::to_string(static_cast<int>(error)) +
                   "): " + cudaGetErrorString(error) + " [" + expression + " at " +
                   (fileName != nullptr ? fileName + 1 : file) + ":" + std::to_string(line) + "]";
  return status;
}

namespace {

/** Bytes the L2 flush reads: at least 256 MiB and at least 4x the L2. */
constexpr size_t kMinimumFlushBytes = size_t{256} << 20;

struct Buffer;

struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  DeviceInfo info;
  // Staging for host data that kernels consume (slots, K/V rows): grown on demand, never per launch.
  void* staging = nullptr;
  size_t stagingBytes = 0;
  // Attention workspace shared by every plan of the context (one stream: launches never overlap).
  float* partialO = nullptr;
  size_t partialOFloats = 0;
  float* partialLse = nullptr;
  size_t partialLseFloats = 0;
  unsigned* counters = nullptr;
  size_t counterCount = 0;
  // Host index arrays of the model ops (token ids, positions, rows), kept by content: the rope of every
  // layer reads one upload of the step's positions. Entries are rewritten in stream order only.
  struct StagedArray {
    void* device = nullptr;
    size_t capacity = 0;
    std::vector<unsigned char> bytes;
    unsigned long long lastUse = 0;
  };
  StagedArray staged[4];
  unsigned long long stagedClock = 0;
  // Matmul workspace: fp16 activations and split-K partial sums.
  uint16_t* matmulHalf = nullptr;
  size_t matmulHalfValues = 0;
  // What matmulHalf holds: the fp16 copy of `halfSource` as of its write `halfSourceWrite` (q, k and v
  // projections of one input convert it once).
  const void* halfSource = nullptr;
  unsigned long long halfSourceWrite = 0;
  size_t halfSourceValues = 0;
  /** Advanced by every enqueued write to a buffer (Buffer::lastWrite). */
  unsigned long long writeClock = 0;
  float* matmulPartial = nullptr;
  size_t matmulPartialFloats = 0;
  /** Rows from which tensor-core matmuls use the tiled kernel (DEFT_CUDA_TILED_MATMUL_ROWS overrides it). */
  int tiledMatmulFromRows = kDefaultTiledMatmulRows;
  /**
   * The tiled matmul on warpgroup MMA: compute capability 9.0, whose sm_90a code has it (the variable
   * DEFT_CUDA_MATMUL_WGMMA=0 keeps mma.sync, for comparisons).
   */
  bool wgmmaMatmul = false;
  // Measurement helpers.
  void* flush = nullptr;
  size_t flushBytes = 0;
  unsigned* sink = nullptr;
  float* rateSink = nullptr;
  size_t rateSinkFloats = 0;
};

struct Buffer {
  Handle context = 0;
  void* pointer = nullptr;
  /** The context's write clock when work that writes this buffer was last enqueued. */
  unsigned long long lastWrite = 0;
  size_t bytes = 0;
};

struct Storage {
  Handle context = 0;
  StorageDescriptor descriptor;
  void* pointer = nullptr;
  size_t regionBytes = 0;  // one layer's K (or V): numPages * pageSize * numKvHeads * headDim elements
  size_t elementBytes = 0;
};

struct Plan {
  Handle context = 0;
  void* device = nullptr;
  /** 1: the task executor (taskParams), 0: work units (params). */
  int executor = 0;
  AttentionParams params{};
  TaskParams taskParams{};
  /** The task executor's partial states, owned by the plan: plans never share them. */
  void* partials = nullptr;
  KvType kvType = KvType::kF16;
  AttentionKernel kernel = AttentionKernel::kAuto;
  int numQueries = 0;
  int pageSize = 0;
  int maxSlot = -1;
};

struct SlotList {
  Handle storage = 0;
  int* device = nullptr;
  int count = 0;
};

struct Event {
  Handle context = 0;
  cudaEvent_t event = nullptr;
};

Handle nextHandle = 1;
std::unordered_map<Handle, std::unique_ptr<Context>> contexts;
std::unordered_map<Handle, std::unique_ptr<Buffer>> buffers;
std::unordered_map<Handle, std::unique_ptr<Storage>> storages;
std::unordered_map<Handle, std::unique_ptr<Plan>> plans;
std::unordered_map<Handle, std::unique_ptr<Event>> events;
std::unordered_map<Handle, std::unique_ptr<SlotList>> slotLists;

template <typename T>
T* Find(std::unordered_map<Handle, std::unique_ptr<T>>& table, Handle handle) {
  const auto found = table.find(handle);
  return found == table.end() ? nullptr : found->second.get();
}

/** Frees (with `release`) and erases every entry of `table` that `belongs` selects. */
template <typename T, typename Belongs, typename ReleaseEntry>
void ReleaseWhere(std::unordered_map<Handle, std::unique_ptr<T>>& table, Belongs belongs, ReleaseEntry release) {
  for (auto iterator = table.begin(); iterator != table.end();) {
    if (belongs(*iterator->second)) {
      release(*iterator->second);
      iterator = table.erase(iterator);
    } else {
      ++iterator;
    }
  }
}

Status MissingHandle(const char* kind, Handle handle) {
  return Status::NotFound(std::string("no live ") + kind + " with handle " + std::to_string(handle) +
                          " (disposed, or created by another backend)");
}

/** The device copy of a host array, uploaded once per distinct content (defined with the model ops). */
Status StageHost(Context* context, const void* data, size_t bytes, const void** device);

/** Records that work writing `buffer` was enqueued (invalidates what was derived from its contents). */
void MarkWritten(Context* context, Buffer* buffer) { buffer->lastWrite = ++context->writeClock; }

/**
 * cudaMalloc that, when the device is out of memory, returns what the stream-ordered pool keeps of freed
 * tensors to the driver and tries once more (the pool holds freed memory for the next forward pass).
 */
cudaError_t MallocReleasingPool(Context* context, void** pointer, size_t bytes) {
  cudaError_t error = cudaMalloc(pointer, bytes);
  if (error != cudaErrorMemoryAllocation) return error;
  cudaGetLastError();
  cudaMemPool_t pool = nullptr;
  if (cudaStreamSynchronize(context->stream) != cudaSuccess ||
      cudaDeviceGetDefaultMemPool(&pool, context->device) != cudaSuccess || cudaMemPoolTrimTo(pool, 0) != cudaSuccess) {
    return error;
  }
  return cudaMalloc(pointer, bytes);
}

/** Looks up a context and makes its device current. */
Status Enter(Handle handle, Context** context) {
  Context* found = Find(contexts, handle);
  if (found == nullptr) return MissingHandle("context", handle);
  DEFT_CUDA_CHECK(cudaSetDevice(found->device));
  *context = found;
  return Status::Ok();
}

Status EnsureStaging(Context* context, size_t bytes) {
  if (context->stagingBytes >= bytes) return Status::Ok();
  const size_t grown = std::max(bytes, context->stagingBytes * 2);
  if (context->staging != nullptr) {
    DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
    DEFT_CUDA_CHECK(cudaFree(context->staging));
    context->staging = nullptr;
    context->stagingBytes = 0;
  }
  DEFT_CUDA_CHECK(cudaMalloc(&context->staging, grown));
  context->stagingBytes = grown;
  return Status::Ok();
}

template <typename T>
Status GrowDevice(Context* context, T** pointer, size_t* capacity, size_t count, bool zero) {
  if (*capacity >= count) return Status::Ok();
  if (*pointer != nullptr) {
    DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
    DEFT_CUDA_CHECK(cudaFree(*pointer));
    *pointer = nullptr;
    *capacity = 0;
  }
  void* allocated = nullptr;
  DEFT_CUDA_CHECK(MallocReleasingPool(context, &allocated, count * sizeof(T)));
  *pointer = static_cast<T*>(allocated);
  *capacity = count;
  if (zero) DEFT_CUDA_CHECK(cudaMemsetAsync(allocated, 0, count * sizeof(T), context->stream));
  return Status::Ok();
}

Status CheckRange(const Buffer* buffer, size_t offset, size_t bytes, const char* what) {
  if (offset > buffer->bytes || bytes > buffer->bytes - offset) {
    return Status::Invalid(std::string(what) + " of " + std::to_string(bytes) + " bytes at offset " +
                           std::to_string(offset) + " exceeds the buffer's " + std::to_string(buffer->bytes) + " bytes");
  }
  return Status::Ok();
}

KvLayer LayerOf(const Storage* storage, int layer) {
  unsigned char* base = static_cast<unsigned char*>(storage->pointer);
  KvLayer view;
  view.k = base + (2 * static_cast<size_t>(layer)) * storage->regionBytes;
  view.v = base + (2 * static_cast<size_t>(layer) + 1) * storage->regionBytes;
  view.type = storage->descriptor.type;
  view.rowElements = storage->descriptor.numKvHeads * storage->descriptor.headDim;
  return view;
}

Status CheckSlots(const Storage* storage, const int* slots, int count) {
  const long long numSlots = static_cast<long long>(storage->descriptor.numPages) * storage->descriptor.pageSize;
  for (int index = 0; index < count; ++index) {
    if (slots[index] < 0 || slots[index] >= numSlots) {
      return Status::Invalid("slot " + std::to_string(slots[index]) + " at index " + std::to_string(index) +
                             " is outside the storage's " + std::to_string(numSlots) + " slots");
    }
  }
  return Status::Ok();
}

/** Uploads two index lists of `count` entries (sources and targets of a copy) to the context's staging. */
Status StagePairs(Context* context, const int* source, const int* target, int count, const int** stagedSource,
                  const int** stagedTarget) {
  const size_t listBytes = (static_cast<size_t>(count) * sizeof(int) + 255) / 256 * 256;
  DEFT_RETURN_IF_ERROR(EnsureStaging(context, 2 * listBytes));
  unsigned char* staging = static_cast<unsigned char*>(context->staging);
  DEFT_CUDA_CHECK(cudaMemcpyAsync(staging, source, count * sizeof(int), cudaMemcpyHostToDevice, context->stream));
  DEFT_CUDA_CHECK(cudaMemcpyAsync(staging + listBytes, target, count * sizeof(int), cudaMemcpyHostToDevice,
                                  context->stream));
  *stagedSource = reinterpret_cast<const int*>(staging);
  *stagedTarget = reinterpret_cast<const int*>(staging + listBytes);
  return Status::Ok();
}

void Release(Context* context) {
  cudaSetDevice(context->device);
  if (context->stream != nullptr) cudaStreamSynchronize(context->stream);
  cudaFree(context->staging);
  cudaFree(context->partialO);
  cudaFree(context->partialLse);
  cudaFree(context->counters);
  cudaFree(context->flush);
  cudaFree(context->sink);
  cudaFree(context->rateSink);
  for (auto& staged : context->staged) cudaFree(staged.device);
  cudaFree(context->matmulHalf);
  cudaFree(context->matmulPartial);
  if (context->stream != nullptr) cudaStreamDestroy(context->stream);
  // What the freed tensors left in the device's pool goes back to the driver.
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, context->device) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
}

}  // namespace

DeviceProbe Probe() {
  DeviceProbe probe;
  const cudaError_t error = cudaGetDeviceCount(&probe.deviceCount);
  probe.error = static_cast<int>(error);
  if (error != cudaSuccess) {
    probe.deviceCount = 0;
    probe.errorName = cudaGetErrorName(error);
    probe.errorMessage = cudaGetErrorString(error);
    cudaGetLastError();  // clear the non-sticky error
  }
  cudaDriverGetVersion(&probe.driverVersion);
  cudaRuntimeGetVersion(&probe.runtimeVersion);
  return probe;
}

Status CreateContext(int ordinal, Handle* handle) {
  int count = 0;
  DEFT_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (count == 0) return CudaFailure(cudaErrorNoDevice, "cudaGetDeviceCount", __FILE__, __LINE__);
  if (ordinal < 0 || ordinal >= count) {
    return Status::Invalid("device " + std::to_string(ordinal) + " does not exist (" + std::to_string(count) +
                           " CUDA devices)");
  }
  auto context = std::make_unique<Context>();
  context->device = ordinal;
  DEFT_CUDA_CHECK(cudaSetDevice(ordinal));
  cudaDeviceProp properties{};
  DEFT_CUDA_CHECK(cudaGetDeviceProperties(&properties, ordinal));
  context->info.name = properties.name;
  context->info.ordinal = ordinal;
  context->info.multiprocessors = properties.multiProcessorCount;
  context->info.computeMajor = properties.major;
  context->info.computeMinor = properties.minor;
  context->info.l2Bytes = static_cast<size_t>(properties.l2CacheSize);
  context->info.sharedPerBlockOptin = properties.sharedMemPerBlockOptin;
  context->info.totalMemory = properties.totalGlobalMem;
  context->info.ringStagesLimit = MmaRingStagesLimit(128, properties.sharedMemPerBlockOptin);
  if (const char* rows = std::getenv("DEFT_CUDA_TILED_MATMUL_ROWS"); rows != nullptr && *rows != '\0') {
    char* end = nullptr;
    const long value = std::strtol(rows, &end, 10);
    if (*end != '\0' || value < 1) {
      return Status::Invalid(std::string("DEFT_CUDA_TILED_MATMUL_ROWS must be a positive integer, not '") + rows + "'");
    }
    context->tiledMatmulFromRows = static_cast<int>(std::min<long>(value, 1 << 30));
  }
  const char* wgmma = std::getenv("DEFT_CUDA_MATMUL_WGMMA");
  context->wgmmaMatmul = properties.major == 9 && properties.minor == 0 &&
                         !(wgmma != nullptr && std::string(wgmma) == "0");
  if (context->info.ringStagesLimit < 2) {
    return Status::Invalid(std::string("device ") + properties.name + " has too little shared memory per block");
  }
  DEFT_RETURN_IF_ERROR(ConfigureAttentionKernels(properties.sharedMemPerBlockOptin));
  DEFT_RETURN_IF_ERROR(ConfigureTaskKernels());
  const cudaError_t streamError = cudaStreamCreateWithFlags(&context->stream, cudaStreamNonBlocking);
  if (streamError != cudaSuccess) return CudaFailure(streamError, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
  // Freed tensors stay in the device's pool for the next forward pass instead of going back to the driver
  // (DestroyContext returns them).
  cudaMemPool_t pool = nullptr;
  uint64_t keep = UINT64_MAX;
  cudaError_t poolError = cudaDeviceGetDefaultMemPool(&pool, ordinal);
  if (poolError == cudaSuccess) poolError = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  if (poolError != cudaSuccess) {
    Release(context.get());
    return CudaFailure(poolError, "cudaMemPoolSetAttribute(release threshold)", __FILE__, __LINE__);
  }
  const cudaError_t sinkError = cudaMalloc(reinterpret_cast<void**>(&context->sink), sizeof(unsigned));
  if (sinkError != cudaSuccess) {
    Release(context.get());
    return CudaFailure(sinkError, "cudaMalloc(sink)", __FILE__, __LINE__);
  }
  const Handle id = nextHandle++;
  contexts.emplace(id, std::move(context));
  *handle = id;
  return Status::Ok();
}

Status DestroyContext(Handle handle) {
  Context* context = Find(contexts, handle);
  if (context == nullptr) return Status::Ok();  // idempotent
  cudaSetDevice(context->device);
  if (context->stream != nullptr) cudaStreamSynchronize(context->stream);
  // Slot lists before storages: a slot list finds its context through its storage.
  ReleaseWhere(plans, [&](const Plan& plan) { return plan.context == handle; },
               [](Plan& plan) { cudaFree(plan.device); });
  ReleaseWhere(
      slotLists,
      [&](const SlotList& list) {
        const Storage* owner = Find(storages, list.storage);
        return owner == nullptr || owner->context == handle;
      },
      [](SlotList& list) { cudaFree(list.device); });
  ReleaseWhere(storages, [&](const Storage& storage) { return storage.context == handle; },
               [](Storage& storage) { cudaFree(storage.pointer); });
  ReleaseWhere(buffers, [&](const Buffer& buffer) { return buffer.context == handle; },
               [&](Buffer& buffer) { cudaFreeAsync(buffer.pointer, context->stream); });
  ReleaseWhere(events, [&](const Event& event) { return event.context == handle; },
               [](Event& event) { cudaEventDestroy(event.event); });
  Release(context);
  contexts.erase(handle);
  return Status::Ok();
}

Status GetDeviceInfo(Handle handle, DeviceInfo* info) {
  Context* context = Find(contexts, handle);
  if (context == nullptr) return MissingHandle("context", handle);
  *info = context->info;
  return Status::Ok();
}

Status Synchronize(Handle handle) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(handle, &context));
  DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
  return Status::Ok();
}

Status Allocate(Handle contextHandle, size_t bytes, Handle* handle) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  auto buffer = std::make_unique<Buffer>();
  buffer->context = contextHandle;
  buffer->bytes = bytes;
  // Stream-ordered: a forward pass's temporaries come from the pool without synchronising.
  DEFT_CUDA_CHECK(cudaMallocAsync(&buffer->pointer, std::max<size_t>(bytes, 16), context->stream));
  MarkWritten(context, buffer.get());  // a new epoch: the pool may hand out a freed buffer's address
  const Handle id = nextHandle++;
  buffers.emplace(id, std::move(buffer));
  *handle = id;
  return Status::Ok();
}

Status FreeBuffer(Handle handle) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return Status::Ok();  // idempotent
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(buffer->context, &context));
  // Returned to the pool once the work enqueued before it is done.
  const cudaError_t error = cudaFreeAsync(buffer->pointer, context->stream);
  buffers.erase(handle);
  DEFT_CUDA_CHECK(error);
  return Status::Ok();
}

Status BufferBytes(Handle handle, size_t* bytes) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  *bytes = buffer->bytes;
  return Status::Ok();
}

Status Upload(Handle handle, size_t byteOffset, const void* data, size_t bytes) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  DEFT_RETURN_IF_ERROR(CheckRange(buffer, byteOffset, bytes, "upload"));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(buffer->context, &context));
  if (bytes == 0) return Status::Ok();
  MarkWritten(context, buffer);
  // Pageable source: the call returns once the data is staged, so the caller may reuse it at once.
  DEFT_CUDA_CHECK(cudaMemcpyAsync(static_cast<unsigned char*>(buffer->pointer) + byteOffset, data, bytes,
                                  cudaMemcpyHostToDevice, context->stream));
  return Status::Ok();
}

Status UploadF32AsF16(Handle handle, size_t elementOffset, const float* data, size_t count) {
  std::vector<uint16_t> converted(count);
  for (size_t index = 0; index < count; ++index) converted[index] = FloatToHalfBits(data[index]);
  return Upload(handle, elementOffset * 2, converted.data(), count * 2);
}

Status Download(Handle handle, size_t byteOffset, void* data, size_t bytes) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  DEFT_RETURN_IF_ERROR(CheckRange(buffer, byteOffset, bytes, "download"));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(buffer->context, &context));
  if (bytes > 0) {
    DEFT_CUDA_CHECK(cudaMemcpyAsync(data, static_cast<const unsigned char*>(buffer->pointer) + byteOffset, bytes,
                                    cudaMemcpyDeviceToHost, context->stream));
  }
  DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
  return Status::Ok();
}

Status DownloadF16AsF32(Handle handle, size_t elementOffset, float* data, size_t count) {
  std::vector<uint16_t> bits(count);
  DEFT_RETURN_IF_ERROR(Download(handle, elementOffset * 2, bits.data(), count * 2));
  for (size_t index = 0; index < count; ++index) data[index] = HalfBitsToFloat(bits[index]);
  return Status::Ok();
}

Status FillF32(Handle handle, size_t elementOffset, size_t count, float value) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  DEFT_RETURN_IF_ERROR(CheckRange(buffer, elementOffset * 4, count * 4, "fill"));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(buffer->context, &context));
  MarkWritten(context, buffer);
  return LaunchFillF32(static_cast<float*>(buffer->pointer) + elementOffset, count, value, context->stream);
}

Status CopyBuffer(Handle targetHandle, Handle sourceHandle, size_t bytes, bool useKernel) {
  Buffer* target = Find(buffers, targetHandle);
  Buffer* source = Find(buffers, sourceHandle);
  if (target == nullptr) return MissingHandle("buffer", targetHandle);
  if (source == nullptr) return MissingHandle("buffer", sourceHandle);
  if (target->context != source->context) return Status::Invalid("buffers belong to different contexts");
  DEFT_RETURN_IF_ERROR(CheckRange(target, 0, bytes, "copy"));
  DEFT_RETURN_IF_ERROR(CheckRange(source, 0, bytes, "copy"));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(target->context, &context));
  MarkWritten(context, target);
  if (useKernel) {
    return LaunchCopy(target->pointer, source->pointer, bytes, context->info.multiprocessors, context->stream);
  }
  DEFT_CUDA_CHECK(cudaMemcpyAsync(target->pointer, source->pointer, bytes, cudaMemcpyDeviceToDevice, context->stream));
  return Status::Ok();
}

Status CreateStorage(Handle contextHandle, const StorageDescriptor& descriptor, Handle* handle) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  if (descriptor.numLayers < 1 || descriptor.numPages < 1 || descriptor.pageSize < 1 || descriptor.numKvHeads < 1 ||
      descriptor.headDim < 1) {
    return Status::Invalid("every storage dimension must be at least 1");
  }
  auto storage = std::make_unique<Storage>();
  storage->context = contextHandle;
  storage->descriptor = descriptor;
  storage->elementBytes = descriptor.type == KvType::kF16 ? 2 : 4;
  storage->regionBytes = static_cast<size_t>(descriptor.numPages) * descriptor.pageSize * descriptor.numKvHeads *
                         descriptor.headDim * storage->elementBytes;
  // Round each region to 16 bytes so every layer's K and V start 16-byte aligned.
  storage->regionBytes = (storage->regionBytes + 15) / 16 * 16;
  const size_t total = storage->regionBytes * 2 * static_cast<size_t>(descriptor.numLayers);
  DEFT_CUDA_CHECK(MallocReleasingPool(context, &storage->pointer, total));
  const cudaError_t clear = cudaMemsetAsync(storage->pointer, 0, total, context->stream);
  if (clear != cudaSuccess) {
    cudaFree(storage->pointer);
    return CudaFailure(clear, "cudaMemsetAsync(storage)", __FILE__, __LINE__);
  }
  const Handle id = nextHandle++;
  storages.emplace(id, std::move(storage));
  *handle = id;
  return Status::Ok();
}

Status FreeStorage(Handle handle) {
  Storage* storage = Find(storages, handle);
  if (storage == nullptr) return Status::Ok();
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
  const cudaError_t error = cudaFree(storage->pointer);
  storages.erase(handle);
  DEFT_CUDA_CHECK(error);
  return Status::Ok();
}

Status WriteKv(Handle storageHandle, int layer, const int* slots, int count, const KvSource& k, const KvSource& v) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  if (layer < 0 || layer >= storage->descriptor.numLayers) return Status::Invalid("layer is out of range");
  if (count < 0) return Status::Invalid("count must be non-negative");
  DEFT_RETURN_IF_ERROR(CheckSlots(storage, slots, count));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  if (count == 0) return Status::Ok();
  const KvLayer view = LayerOf(storage, layer);
  const size_t rowElements = static_cast<size_t>(view.rowElements);
  const size_t slotBytes = (static_cast<size_t>(count) * sizeof(int) + 255) / 256 * 256;
  const bool host = k.host != nullptr;
  if (host != (v.host != nullptr)) return Status::Invalid("k and v must both be host arrays or both device tensors");
  if (host && (k.hostCount != count * rowElements || v.hostCount != count * rowElements)) {
    return Status::Invalid("k and v must hold slots.length * numKvHeads * headDim values");
  }
  if (host) {
    const size_t valueBytes = (count * rowElements * sizeof(float) + 255) / 256 * 256;
    DEFT_RETURN_IF_ERROR(EnsureStaging(context, slotBytes + 2 * valueBytes));
    unsigned char* staging = static_cast<unsigned char*>(context->staging);
    DEFT_CUDA_CHECK(cudaMemcpyAsync(staging, slots, count * sizeof(int), cudaMemcpyHostToDevice, context->stream));
    DEFT_CUDA_CHECK(cudaMemcpyAsync(staging + slotBytes, k.host, count * rowElements * sizeof(float),
                                    cudaMemcpyHostToDevice, context->stream));
    DEFT_CUDA_CHECK(cudaMemcpyAsync(staging + slotBytes + valueBytes, v.host, count * rowElements * sizeof(float),
                                    cudaMemcpyHostToDevice, context->stream));
    return LaunchWriteKv(view, reinterpret_cast<const int*>(staging), count, staging + slotBytes,
                         staging + slotBytes + valueBytes, KvType::kF32, context->stream);
  }
  Buffer* keys = Find(buffers, k.buffer);
  Buffer* values = Find(buffers, v.buffer);
  if (keys == nullptr) return MissingHandle("buffer", k.buffer);
  if (values == nullptr) return MissingHandle("buffer", v.buffer);
  if (k.bufferType != v.bufferType) return Status::Invalid("k and v tensors must have the same dtype");
  const size_t sourceBytes = count * rowElements * (k.bufferType == KvType::kF16 ? 2 : 4);
  DEFT_RETURN_IF_ERROR(CheckRange(keys, 0, sourceBytes, "k"));
  DEFT_RETURN_IF_ERROR(CheckRange(values, 0, sourceBytes, "v"));
  // A forward pass writes the same slots in every layer: one upload serves them all.
  const void* stagedSlots = nullptr;
  DEFT_RETURN_IF_ERROR(StageHost(context, slots, static_cast<size_t>(count) * sizeof(int), &stagedSlots));
  return LaunchWriteKv(view, static_cast<const int*>(stagedSlots), count, keys->pointer, values->pointer, k.bufferType,
                       context->stream);
}

Status ReadKv(Handle storageHandle, int layer, const int* slots, int count, float* k, size_t kCount, float* v,
              size_t vCount) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  if (layer < 0 || layer >= storage->descriptor.numLayers) return Status::Invalid("layer is out of range");
  if (count < 0) return Status::Invalid("count must be non-negative");
  DEFT_RETURN_IF_ERROR(CheckSlots(storage, slots, count));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  if (count == 0) return Status::Ok();
  const KvLayer view = LayerOf(storage, layer);
  const size_t values = static_cast<size_t>(count) * view.rowElements;
  if (kCount != values || vCount != values) {
    return Status::Invalid("k and v must hold slots.length * numKvHeads * headDim values");
  }
  const size_t slotBytes = (static_cast<size_t>(count) * sizeof(int) + 255) / 256 * 256;
  const size_t valueBytes = (values * sizeof(float) + 255) / 256 * 256;
  DEFT_RETURN_IF_ERROR(EnsureStaging(context, slotBytes + 2 * valueBytes));
  unsigned char* staging = static_cast<unsigned char*>(context->staging);
  DEFT_CUDA_CHECK(cudaMemcpyAsync(staging, slots, count * sizeof(int), cudaMemcpyHostToDevice, context->stream));
  float* stagedK = reinterpret_cast<float*>(staging + slotBytes);
  float* stagedV = reinterpret_cast<float*>(staging + slotBytes + valueBytes);
  DEFT_RETURN_IF_ERROR(LaunchReadKv(view, reinterpret_cast<const int*>(staging), count, stagedK, stagedV, context->stream));
  DEFT_CUDA_CHECK(cudaMemcpyAsync(k, stagedK, values * sizeof(float), cudaMemcpyDeviceToHost, context->stream));
  DEFT_CUDA_CHECK(cudaMemcpyAsync(v, stagedV, values * sizeof(float), cudaMemcpyDeviceToHost, context->stream));
  DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
  return Status::Ok();
}

Status CopyPages(Handle storageHandle, const int* source, const int* target, int count) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  if (count < 0) return Status::Invalid("count must be non-negative");
  for (int index = 0; index < count; ++index) {
    if (source[index] < 0 || source[index] >= storage->descriptor.numPages || target[index] < 0 ||
        target[index] >= storage->descriptor.numPages) {
      return Status::Invalid("page index at " + std::to_string(index) + " is outside the storage");
    }
  }
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  if (count == 0) return Status::Ok();
  const int* stagedSource = nullptr;
  const int* stagedTarget = nullptr;
  DEFT_RETURN_IF_ERROR(StagePairs(context, source, target, count, &stagedSource, &stagedTarget));
  const StorageDescriptor& descriptor = storage->descriptor;
  const size_t pageBytes =
      static_cast<size_t>(descriptor.pageSize) * descriptor.numKvHeads * descriptor.headDim * storage->elementBytes;
  return LaunchCopyPages(storage->pointer, storage->regionBytes, 2 * descriptor.numLayers, pageBytes, stagedSource,
                         stagedTarget, count, context->stream);
}

Status PreparePlan(Handle contextHandle, const int32_t* header, const void* bytes, size_t size, Handle* handle,
                   PlanSummary* summary) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  for (int field = 0; field < kHeaderFieldCount; ++field) {
    if (header[field] < 0 && field != kHeaderMaxSlot) return Status::Invalid("plan header field is negative");
  }
  if (static_cast<size_t>(header[kHeaderTotalBytes]) != size) return Status::Invalid("plan header size mismatch");
  for (int field = kHeaderOffsetTokenSlots; field <= kHeaderOffsetMergeQueries; ++field) {
    if (static_cast<size_t>(header[field]) > size || header[field] % 16 != 0) {
      return Status::Invalid("plan header offset is out of range or unaligned");
    }
  }
  const int numHeads = header[kHeaderNumHeads];
  const int numKvHeads = header[kHeaderNumKvHeads];
  const int headDim = header[kHeaderHeadDim];
  if (numKvHeads < 1 || numHeads < numKvHeads || numHeads % numKvHeads != 0 || headDim < 1) {
    return Status::Invalid("plan shape is invalid");
  }
  const KvType kvType = header[kHeaderKvType] == 1 ? KvType::kF16 : KvType::kF32;
  const AttentionKernel requested = static_cast<AttentionKernel>(header[kHeaderKernel]);
  if (header[kHeaderKernel] > static_cast<int>(AttentionKernel::kWgmma)) return Status::Invalid("unknown kernel");
  const bool mmaPossible = kvType == KvType::kF16 && MmaSupportsHeadDim(headDim);
  if (requested == AttentionKernel::kMma && !mmaPossible) {
    return Status::Invalid("the tensor-core kernel needs fp16 KV and head dim 64 or 128");
  }
  // The wgmma kernel exists in the sm_90a build only, which runs on compute capability 9.0 alone; head
  // dim 64 stays on mma.sync until its wgmma path passes the device check (KERNEL_NOTES.md, v11).
  const bool wgmmaPossible = kvType == KvType::kF16 && headDim == 128 && header[kHeaderExecutor] == 1 &&
                             context->info.computeMajor == 9 && context->info.computeMinor == 0;
  if (requested == AttentionKernel::kWgmma && !wgmmaPossible) {
    return Status::Invalid(
        "the wgmma kernel needs compute capability 9.0, fp16 KV, head dim 128 and the task executor");
  }
  if (!mmaPossible && headDim > 256) return Status::Invalid("head dim above 256 is not supported");

  auto plan = std::make_unique<Plan>();
  plan->context = contextHandle;
  plan->kvType = kvType;
  plan->kernel = requested != AttentionKernel::kAuto ? requested
                 : wgmmaPossible                     ? AttentionKernel::kWgmma
                 : mmaPossible                       ? AttentionKernel::kMma
                                                     : AttentionKernel::kScalar;
  plan->numQueries = header[kHeaderNumQueries];
  plan->pageSize = header[kHeaderPageSize];
  plan->maxSlot = header[kHeaderMaxSlot];
  plan->executor = header[kHeaderExecutor];
  if (plan->executor == 1) {
    for (int field = kHeaderOffsetTasks; field <= kHeaderOffsetSuffixSlots; ++field) {
      if (static_cast<size_t>(header[field]) > size || header[field] % 16 != 0) {
        return Status::Invalid("plan header offset is out of range or unaligned");
      }
    }
    const int numPartials = header[kHeaderNumExecPartials];
    const size_t oBytes = (static_cast<size_t>(numPartials) * numHeads * headDim * sizeof(float) + 255) / 256 * 256;
    const size_t lseBytes = static_cast<size_t>(numPartials) * numHeads * sizeof(float);
    if (oBytes + lseBytes > 0) DEFT_CUDA_CHECK(cudaMallocAsync(&plan->partials, oBytes + lseBytes, context->stream));
    if (size > 0) {
      const cudaError_t allocated = cudaMallocAsync(&plan->device, size, context->stream);
      const cudaError_t copied = allocated == cudaSuccess
                                     ? cudaMemcpyAsync(plan->device, bytes, size, cudaMemcpyHostToDevice, context->stream)
                                     : allocated;
      if (copied != cudaSuccess) {
        if (plan->partials != nullptr) cudaFreeAsync(plan->partials, context->stream);
        if (allocated == cudaSuccess) cudaFreeAsync(plan->device, context->stream);
        return CudaFailure(copied, "cudaMemcpyAsync(plan)", __FILE__, __LINE__);
      }
    }
    const unsigned char* base = static_cast<const unsigned char*>(plan->device);
    auto at = [&](int field) { return base + header[field]; };
    TaskParams& params = plan->taskParams;
    params.tasks = reinterpret_cast<const AttentionTask*>(at(kHeaderOffsetTasks));
    params.taskSlots = reinterpret_cast<const int*>(at(kHeaderOffsetTaskSlots));
    params.taskRows = reinterpret_cast<const TaskRow*>(at(kHeaderOffsetTaskRows));
    params.queryPartialIndptr = reinterpret_cast<const int*>(at(kHeaderOffsetQueryPartialIndptr));
    params.queryPartials = reinterpret_cast<const int*>(at(kHeaderOffsetQueryPartials));
    params.suffixIndptr = reinterpret_cast<const int*>(at(kHeaderOffsetSuffixIndptr));
    params.suffixSlots = reinterpret_cast<const int*>(at(kHeaderOffsetSuffixSlots));
    params.mergeQueries = reinterpret_cast<const int*>(at(kHeaderOffsetMergeQueries));
    params.numTasks = header[kHeaderNumTasks];
    params.numMergeQueries = header[kHeaderNumMergeQueries];
    params.partialO = static_cast<float*>(plan->partials);
    params.partialLse =
        plan->partials == nullptr ? nullptr : reinterpret_cast<float*>(static_cast<unsigned char*>(plan->partials) + oBytes);
    params.numHeads = numHeads;
    params.numKvHeads = numKvHeads;
    params.group = numHeads / numKvHeads;
    params.headDim = headDim;
    params.dependentLaunch = context->info.computeMajor >= 9 ? 1 : 0;
    params.wgmmaMinRows = 33;
    params.multiprocessors = context->info.multiprocessors;
    summary->ringStages = TaskRingStages();
    summary->kernel = static_cast<int>(plan->kernel);
    summary->sharedBytes = plan->kernel == AttentionKernel::kScalar ? 0 : TaskSharedBytes(headDim, plan->kernel);
    const Handle id = nextHandle++;
    plans.emplace(id, std::move(plan));
    *handle = id;
    return Status::Ok();
  }

  // Ring depth: enough KV tiles to keep a chunk resident when several passes reuse it, at least a
  // double buffer, at most what shared memory allows.
  const int stagesLimit = MmaRingStagesLimit(headDim, context->info.sharedPerBlockOptin);
  const int ringStages = std::max(2, std::min(header[kHeaderResidentTiles], stagesLimit));

  const int numPartials = header[kHeaderNumExecPartials];
  DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->partialO, &context->partialOFloats,
                                  static_cast<size_t>(numPartials) * numHeads * headDim, false));
  DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->partialLse, &context->partialLseFloats,
                                  static_cast<size_t>(numPartials) * numHeads, false));
  DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->counters, &context->counterCount,
                                  static_cast<size_t>(plan->numQueries) * numKvHeads, true));

  if (size > 0) {
    DEFT_CUDA_CHECK(cudaMallocAsync(&plan->device, size, context->stream));
    const cudaError_t copied = cudaMemcpyAsync(plan->device, bytes, size, cudaMemcpyHostToDevice, context->stream);
    if (copied != cudaSuccess) {
      cudaFreeAsync(plan->device, context->stream);
      return CudaFailure(copied, "cudaMemcpyAsync(plan)", __FILE__, __LINE__);
    }
  }
  const unsigned char* base = static_cast<const unsigned char*>(plan->device);
  auto at = [&](int field) { return base + header[field]; };
  AttentionParams& params = plan->params;
  params.tokenSlots = reinterpret_cast<const int*>(at(kHeaderOffsetTokenSlots));
  params.tokenSegments = reinterpret_cast<const int*>(at(kHeaderOffsetTokenSegments));
  params.chunkQueries = reinterpret_cast<const int*>(at(kHeaderOffsetChunkQueries));
  params.mask = reinterpret_cast<const uint32_t*>(at(kHeaderOffsetMask));
  params.units = reinterpret_cast<const AttentionUnit*>(at(kHeaderOffsetUnits));
  params.queryPartialIndptr = reinterpret_cast<const int*>(at(kHeaderOffsetQueryPartialIndptr));
  params.queryPartials = reinterpret_cast<const int*>(at(kHeaderOffsetQueryPartials));
  params.emptyQueries = reinterpret_cast<const int*>(at(kHeaderOffsetEmptyQueries));
  params.mergeQueries = reinterpret_cast<const int*>(at(kHeaderOffsetMergeQueries));
  params.numMergeQueries = header[kHeaderNumMergeQueries];
  params.fuseMerge = header[kHeaderFuseMerge] != 0 ? 1 : 0;
  params.numUnits = header[kHeaderNumUnits];
  params.numEmptyQueries = header[kHeaderNumEmptyQueries];
  params.numHeads = numHeads;
  params.numKvHeads = numKvHeads;
  params.group = numHeads / numKvHeads;
  params.headDim = headDim;
  params.ringStages = ringStages;
  params.partialO = context->partialO;
  params.partialLse = context->partialLse;
  params.counters = context->counters;
  params.dependentLaunch = context->info.computeMajor >= 9 ? 1 : 0;

  summary->ringStages = ringStages;
  summary->kernel = static_cast<int>(plan->kernel);
  summary->sharedBytes = plan->kernel == AttentionKernel::kMma ? MmaSharedBytes(headDim, ringStages) : 0;
  const Handle id = nextHandle++;
  plans.emplace(id, std::move(plan));
  *handle = id;
  return Status::Ok();
}

Status FreePlan(Handle handle) {
  Plan* plan = Find(plans, handle);
  if (plan == nullptr) return Status::Ok();
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(plan->context, &context));
  const cudaError_t error = plan->device != nullptr ? cudaFreeAsync(plan->device, context->stream) : cudaSuccess;
  const cudaError_t partialsError =
      plan->partials != nullptr ? cudaFreeAsync(plan->partials, context->stream) : cudaSuccess;
  plans.erase(handle);
  DEFT_CUDA_CHECK(partialsError);
  DEFT_CUDA_CHECK(error);
  return Status::Ok();
}

namespace {

/** Checks one layer's attention arguments and enqueues it (`blockProfile`: null, or the task executor's records). */
Status EnqueueTreeAttention(Handle planHandle, Handle storageHandle, int layer, Handle qHandle, Handle outHandle,
                            float scale, unsigned long long* blockProfile) {
  Plan* plan = Find(plans, planHandle);
  if (plan == nullptr) return MissingHandle("plan", planHandle);
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  Buffer* q = Find(buffers, qHandle);
  Buffer* out = Find(buffers, outHandle);
  if (q == nullptr) return MissingHandle("buffer", qHandle);
  if (out == nullptr) return MissingHandle("buffer", outHandle);
  if (storage->context != plan->context || q->context != plan->context || out->context != plan->context) {
    return Status::Invalid("plan, storage and tensors must belong to the same backend");
  }
  const StorageDescriptor& descriptor = storage->descriptor;
  const int numKvHeads = plan->executor == 1 ? plan->taskParams.numKvHeads : plan->params.numKvHeads;
  const int numHeads = plan->executor == 1 ? plan->taskParams.numHeads : plan->params.numHeads;
  const int headDim = plan->executor == 1 ? plan->taskParams.headDim : plan->params.headDim;
  if (descriptor.type != plan->kvType || descriptor.numKvHeads != numKvHeads || descriptor.headDim != headDim ||
      descriptor.pageSize != plan->pageSize) {
    return Status::Invalid("the storage's shape differs from the shape the plan was prepared for");
  }
  if (plan->maxSlot >= static_cast<long long>(descriptor.numPages) * descriptor.pageSize) {
    return Status::Invalid("the plan reads slots beyond the storage");
  }
  if (layer < 0 || layer >= descriptor.numLayers) return Status::Invalid("layer is out of range");
  const size_t rowBytes = static_cast<size_t>(plan->numQueries) * numHeads * headDim * sizeof(float);
  if (q->bytes < rowBytes || out->bytes < rowBytes) return Status::Invalid("q or out is smaller than the plan needs");
  if (!std::isfinite(scale)) return Status::Invalid("scale must be finite");
  Context* context = Find(contexts, plan->context);
  DEFT_CUDA_CHECK(cudaSetDevice(context->device));
  MarkWritten(context, out);
  const KvLayer view = LayerOf(storage, layer);
  if (plan->executor == 1) {
    TaskParams params = plan->taskParams;
    params.k = view.k;
    params.v = view.v;
    params.q = static_cast<const float*>(q->pointer);
    params.out = static_cast<float*>(out->pointer);
    params.scaleLog2 = scale * 1.4426950408889634f;
    params.blockProfile = blockProfile;
    return LaunchTaskAttention(params, plan->kvType, plan->kernel, context->stream);
  }
  if (blockProfile != nullptr) return Status::Invalid("only the task executor records a block profile");
  AttentionParams params = plan->params;
  params.k = view.k;
  params.v = view.v;
  params.q = static_cast<const float*>(q->pointer);
  params.out = static_cast<float*>(out->pointer);
  params.scaleLog2 = scale * 1.4426950408889634f;
  return LaunchTreeAttention(params, plan->kvType, plan->kernel, context->stream);
}

}  // namespace

Status TreeAttention(Handle planHandle, Handle storageHandle, int layer, Handle qHandle, Handle outHandle, float scale) {
  return EnqueueTreeAttention(planHandle, storageHandle, layer, qHandle, outHandle, scale, nullptr);
}

Status ProfileTreeAttention(Handle planHandle, Handle storageHandle, int layer, Handle qHandle, Handle outHandle,
                            float scale, double* profile, size_t profileCount) {
  Plan* plan = Find(plans, planHandle);
  if (plan == nullptr) return MissingHandle("plan", planHandle);
  if (plan->executor != 1) return Status::Invalid("only the task executor records a block profile");
  const size_t blocks = static_cast<size_t>(plan->taskParams.numTasks) * plan->taskParams.numKvHeads;
  if (profileCount != 3 * blocks) return Status::Invalid("the profile must hold 3 values per attention CTA");
  Context* context = Find(contexts, plan->context);
  if (context == nullptr) return MissingHandle("context", plan->context);
  DEFT_CUDA_CHECK(cudaSetDevice(context->device));
  if (blocks == 0) {  // nothing to record: the merge alone
    DEFT_RETURN_IF_ERROR(TreeAttention(planHandle, storageHandle, layer, qHandle, outHandle, scale));
    DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
    return Status::Ok();
  }
  unsigned long long* records = nullptr;
  const size_t bytes = 3 * blocks * sizeof(unsigned long long);
  DEFT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&records), bytes, context->stream));
  std::vector<unsigned long long> host(3 * blocks);
  Status status = EnqueueTreeAttention(planHandle, storageHandle, layer, qHandle, outHandle, scale, records);
  cudaError_t error = status.ok() ? cudaMemcpyAsync(host.data(), records, bytes, cudaMemcpyDeviceToHost, context->stream)
                                  : cudaSuccess;
  const cudaError_t freed = cudaFreeAsync(records, context->stream);
  if (!status.ok()) return status;
  if (error == cudaSuccess) error = freed;
  if (error == cudaSuccess) error = cudaStreamSynchronize(context->stream);
  if (error != cudaSuccess) return CudaFailure(error, "ProfileTreeAttention", __FILE__, __LINE__);
  unsigned long long earliest = host[0];
  for (size_t block = 0; block < blocks; ++block) earliest = std::min(earliest, host[3 * block]);
  for (size_t block = 0; block < blocks; ++block) {
    profile[3 * block] = static_cast<double>(host[3 * block + 2]);
    profile[3 * block + 1] = static_cast<double>(host[3 * block] - earliest);
    profile[3 * block + 2] = static_cast<double>(host[3 * block + 1] - earliest);
  }
  return Status::Ok();
}

Status CreateEvent(Handle contextHandle, Handle* handle) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  auto event = std::make_unique<Event>();
  event->context = contextHandle;
  DEFT_CUDA_CHECK(cudaEventCreate(&event->event));
  const Handle id = nextHandle++;
  events.emplace(id, std::move(event));
  *handle = id;
  return Status::Ok();
}

Status DestroyEvent(Handle handle) {
  Event* event = Find(events, handle);
  if (event == nullptr) return Status::Ok();
  const cudaError_t error = cudaEventDestroy(event->event);
  events.erase(handle);
  DEFT_CUDA_CHECK(error);
  return Status::Ok();
}

Status RecordEvent(Handle handle) {
  Event* event = Find(events, handle);
  if (event == nullptr) return MissingHandle("event", handle);
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(event->context, &context));
  DEFT_CUDA_CHECK(cudaEventRecord(event->event, context->stream));
  return Status::Ok();
}

Status ElapsedMilliseconds(Handle startHandle, Handle endHandle, float* milliseconds) {
  Event* start = Find(events, startHandle);
  Event* end = Find(events, endHandle);
  if (start == nullptr) return MissingHandle("event", startHandle);
  if (end == nullptr) return MissingHandle("event", endHandle);
  DEFT_CUDA_CHECK(cudaEventSynchronize(end->event));
  DEFT_CUDA_CHECK(cudaEventElapsedTime(milliseconds, start->event, end->event));
  return Status::Ok();
}

Status FlushL2(Handle contextHandle, size_t bytes) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  const size_t wanted = std::max({bytes, kMinimumFlushBytes, context->info.l2Bytes * 4}) / 16 * 16;
  if (context->flushBytes < wanted) {
    if (context->flush != nullptr) {
      DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
      DEFT_CUDA_CHECK(cudaFree(context->flush));
      context->flush = nullptr;
      context->flushBytes = 0;
    }
    DEFT_CUDA_CHECK(cudaMalloc(&context->flush, wanted));
    DEFT_CUDA_CHECK(cudaMemsetAsync(context->flush, 1, wanted, context->stream));
    context->flushBytes = wanted;
  }
  return LaunchFlush(context->flush, context->flushBytes, context->sink, context->info.multiprocessors, context->stream);
}

Status CreateSlotList(Handle storageHandle, const int* slots, int count, Handle* handle) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  if (count < 0) return Status::Invalid("count must be non-negative");
  DEFT_RETURN_IF_ERROR(CheckSlots(storage, slots, count));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  auto list = std::make_unique<SlotList>();
  list->storage = storageHandle;
  list->count = count;
  DEFT_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&list->device), std::max<size_t>(16, count * sizeof(int))));
  if (count > 0) {
    const cudaError_t copied = cudaMemcpy(list->device, slots, count * sizeof(int), cudaMemcpyHostToDevice);
    if (copied != cudaSuccess) {
      cudaFree(list->device);
      return CudaFailure(copied, "cudaMemcpy(slot list)", __FILE__, __LINE__);
    }
  }
  const Handle id = nextHandle++;
  slotLists.emplace(id, std::move(list));
  *handle = id;
  return Status::Ok();
}

Status FreeSlotList(Handle handle) {
  SlotList* list = Find(slotLists, handle);
  if (list == nullptr) return Status::Ok();
  const cudaError_t error = cudaFree(list->device);
  slotLists.erase(handle);
  DEFT_CUDA_CHECK(error);
  return Status::Ok();
}

Status ReadOnce(Handle storageHandle, int layer, Handle listHandle, bool perHead) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  SlotList* list = Find(slotLists, listHandle);
  if (list == nullptr) return MissingHandle("slot list", listHandle);
  if (list->storage != storageHandle) return Status::Invalid("the slot list was made for another storage");
  if (layer < 0 || layer >= storage->descriptor.numLayers) return Status::Invalid("layer is out of range");
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  return LaunchReadOnce(LayerOf(storage, layer), list->device, list->count, storage->descriptor.numKvHeads, perHead,
                        context->sink, context->info.multiprocessors, context->stream);
}

Status EmptyKernel(Handle contextHandle) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  return LaunchEmpty(context->stream);
}

Status Spin(Handle contextHandle, unsigned long long nanoseconds) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  return LaunchSpin(nanoseconds, context->stream);
}

Status MmaRate(Handle contextHandle, int blocks, int iterations) {
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(contextHandle, &context));
  if (blocks < 1 || iterations < 1) return Status::Invalid("blocks and iterations must be at least 1");
  DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->rateSink, &context->rateSinkFloats, static_cast<size_t>(blocks),
                                  false));
  return LaunchMmaRate(blocks, iterations, context->rateSink, context->stream);
}

// --- Model ops ----------------------------------------------------------------------------------

namespace {

/** A buffer of the context holding at least `bytes`, or an invalid-argument status naming `what`. */
Status FindOperand(Handle handle, Handle context, size_t bytes, const char* what, void** pointer) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  if (buffer->context != context) return Status::Invalid(std::string(what) + " belongs to another context");
  DEFT_RETURN_IF_ERROR(CheckRange(buffer, 0, bytes, what));
  *pointer = buffer->pointer;
  return Status::Ok();
}

/** FindOperand for a buffer the op writes: also records the write. */
Status FindOutput(Context* context, Handle handle, Handle contextHandle, size_t bytes, const char* what, void** pointer) {
  DEFT_RETURN_IF_ERROR(FindOperand(handle, contextHandle, bytes, what, pointer));
  MarkWritten(context, Find(buffers, handle));
  return Status::Ok();
}

/**
 * Where an op writing `values` f32 also writes their fp16 copy for the matmul that reads them next: the
 * matmul workspace, or null (no copy) when it would have to grow (growing waits for the stream); the matmul
 * then converts on its own. The workspace's previous content is given up either way.
 */
void* HalfCopyTarget(Context* context, size_t values) {
  if (context->matmulHalfValues < values) return nullptr;
  context->halfSource = nullptr;
  return context->matmulHalf;
}

/** After the launch that wrote it: the workspace holds `out` (or nothing, when `out` is null) as of its write. */
void RecordHalfCopy(Context* context, Handle outHandle, const void* out, size_t values) {
  context->halfSource = out;
  context->halfSourceWrite = out != nullptr ? Find(buffers, outHandle)->lastWrite : 0;
  context->halfSourceValues = values;
}

/** Enters the context of buffer `handle`. */
Status EnterBuffer(Handle handle, Context** context, Handle* contextHandle) {
  Buffer* buffer = Find(buffers, handle);
  if (buffer == nullptr) return MissingHandle("buffer", handle);
  *contextHandle = buffer->context;
  return Enter(buffer->context, context);
}

/** The device copy of a host array: an earlier upload with the same bytes, or a new stream-ordered one. */
Status StageHost(Context* context, const void* data, size_t bytes, const void** device) {
  Context::StagedArray* chosen = nullptr;
  for (auto& entry : context->staged) {
    if (entry.device != nullptr && entry.bytes.size() == bytes && std::memcmp(entry.bytes.data(), data, bytes) == 0) {
      entry.lastUse = ++context->stagedClock;
      *device = entry.device;
      return Status::Ok();
    }
    if (chosen == nullptr || entry.lastUse < chosen->lastUse) chosen = &entry;
  }
  if (chosen->capacity < bytes) {
    DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
    cudaFree(chosen->device);
    chosen->device = nullptr;
    chosen->capacity = 0;
    const size_t capacity = std::max<size_t>(bytes, 4096);
    DEFT_CUDA_CHECK(cudaMalloc(&chosen->device, capacity));
    chosen->capacity = capacity;
  }
  chosen->bytes.clear();  // holds nothing until the copy is enqueued
  if (bytes > 0) {
    DEFT_CUDA_CHECK(cudaMemcpyAsync(chosen->device, data, bytes, cudaMemcpyHostToDevice, context->stream));
  }
  chosen->bytes.assign(static_cast<const unsigned char*>(data), static_cast<const unsigned char*>(data) + bytes);
  chosen->lastUse = ++context->stagedClock;
  *device = chosen->device;
  return Status::Ok();
}

/** Largest split-K workspace of one matmul, in floats (64 MiB). */
constexpr size_t kMaxMatmulPartialFloats = size_t{16} << 20;

size_t ElementBytes(KvType type) { return type == KvType::kF16 ? 2 : 4; }

}  // namespace

Status GatherRows(Handle tableHandle, KvType tableType, int tableRows, const int* rows, int count, Handle outHandle,
                  int width) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(tableHandle, &context, &contextHandle));
  if (width < 1 || tableRows < 1 || count < 0) return Status::Invalid("gather shape is invalid");
  for (int index = 0; index < count; ++index) {
    if (rows[index] < 0 || rows[index] >= tableRows) {
      return Status::Invalid("row " + std::to_string(rows[index]) + " at index " + std::to_string(index) +
                             " is outside the table's " + std::to_string(tableRows) + " rows");
    }
  }
  void* table = nullptr;
  void* out = nullptr;
  DEFT_RETURN_IF_ERROR(FindOperand(tableHandle, contextHandle,
                                   static_cast<size_t>(tableRows) * width * ElementBytes(tableType), "table", &table));
  DEFT_RETURN_IF_ERROR(FindOutput(context, outHandle, contextHandle, static_cast<size_t>(count) * width * 4, "out", &out));
  if (count == 0) return Status::Ok();
  const void* staged = nullptr;
  DEFT_RETURN_IF_ERROR(StageHost(context, rows, static_cast<size_t>(count) * sizeof(int), &staged));
  return LaunchGatherRows(table, tableType, static_cast<const int*>(staged), count, static_cast<float*>(out), width,
                          context->stream);
}

Status Matmul(Handle xHandle, const Handle* weightHandles, KvType weightType, const Handle* outHandles, const int* n,
              int count, int m, int k) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(xHandle, &context, &contextHandle));
  if (count < 1 || count > kMaxMatmulGroup) {
    return Status::Invalid("a matmul group holds 1 to " + std::to_string(kMaxMatmulGroup) + " matmuls");
  }
  if (m < 0 || k < 1) return Status::Invalid("matmul shape is invalid");
  MatmulArgs args{};
  void* x = nullptr;
  DEFT_RETURN_IF_ERROR(FindOperand(xHandle, contextHandle, static_cast<size_t>(m) * k * 4, "x", &x));
  int rowsInGroup = 0;
  for (int index = 0; index < count; ++index) {
    if (n[index] < 1) return Status::Invalid("matmul shape is invalid");
    if (outHandles[index] == xHandle) return Status::Invalid("matmul out must not alias x");
    for (int other = 0; other < index; ++other) {
      if (outHandles[other] == outHandles[index]) return Status::Invalid("the outs of a matmul group must be distinct");
    }
    void* weight = nullptr;
    DEFT_RETURN_IF_ERROR(FindOperand(weightHandles[index], contextHandle,
                                     static_cast<size_t>(n[index]) * k * ElementBytes(weightType), "weight", &weight));
    args.weight[index] = weight;
    args.n[index] = n[index];
    rowsInGroup += n[index];
  }
  for (int index = 0; index < count; ++index) {
    void* out = nullptr;
    DEFT_RETURN_IF_ERROR(FindOutput(context, outHandles[index], contextHandle, static_cast<size_t>(m) * n[index] * 4,
                                    "out", &out));
    args.out[index] = static_cast<float*>(out);
  }
  if (m == 0) return Status::Ok();
  args.x = static_cast<const float*>(x);
  args.weightType = weightType;
  args.count = count;
  args.m = m;
  args.k = k;
  MatmulSplit split;
  if (MatmulUsesTensorCores(weightType, k)) {
    const size_t values = static_cast<size_t>(m) * k;
    const Buffer* source = Find(buffers, xHandle);
    if (context->halfSource != x || context->halfSourceWrite != source->lastWrite ||
        context->halfSourceValues != values) {
      if (context->matmulHalfValues < values) context->halfSource = nullptr;
      DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->matmulHalf, &context->matmulHalfValues, values, false));
      DEFT_RETURN_IF_ERROR(LaunchToHalf(args.x, context->matmulHalf, values, context->stream));
      context->halfSource = x;
      context->halfSourceWrite = source->lastWrite;
      context->halfSourceValues = values;
    }
    args.x16 = context->matmulHalf;
    // Compute capability 9.0+: split-K sums in a thread-block cluster (at most 8 CTAs, the portable size).
    args.clusterReduce = context->info.computeMajor >= 9;
    split = ChooseMatmulSplit(m, k, rowsInGroup, context->info.multiprocessors, kMaxMatmulPartialFloats,
                              args.clusterReduce, context->tiledMatmulFromRows, context->wgmmaMatmul);
    if (split.splits > 1 && !args.clusterReduce) {
      const int widest = *std::max_element(n, n + count);
      DEFT_RETURN_IF_ERROR(GrowDevice(context, &context->matmulPartial, &context->matmulPartialFloats,
                                      static_cast<size_t>(split.splits) * m * widest, false));
      args.partial = context->matmulPartial;
    }
  }
  return LaunchMatmul(args, split, context->stream);
}

Status RmsNorm(Handle xHandle, Handle residualHandle, Handle weightHandle, KvType weightType, Handle outHandle,
               int rows, int width, float epsilon) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(xHandle, &context, &contextHandle));
  if (rows < 0 || width < 1) return Status::Invalid("rmsNorm shape is invalid");
  if (residualHandle != 0 && (outHandle == xHandle || outHandle == residualHandle)) {
    return Status::Invalid("rmsNorm out must not alias x or the residual");
  }
  void* x = nullptr;
  void* residual = nullptr;
  void* weight = nullptr;
  void* out = nullptr;
  const size_t bytes = static_cast<size_t>(rows) * width * 4;
  if (residualHandle != 0) {
    DEFT_RETURN_IF_ERROR(FindOperand(residualHandle, contextHandle, bytes, "residual", &residual));
  }
  DEFT_RETURN_IF_ERROR(FindOperand(weightHandle, contextHandle, width * ElementBytes(weightType), "weight", &weight));
  if (residualHandle != 0) {
    DEFT_RETURN_IF_ERROR(FindOutput(context, xHandle, contextHandle, bytes, "x", &x));
  } else {
    DEFT_RETURN_IF_ERROR(FindOperand(xHandle, contextHandle, bytes, "x", &x));
  }
  DEFT_RETURN_IF_ERROR(FindOutput(context, outHandle, contextHandle, bytes, "out", &out));
  const size_t values = static_cast<size_t>(rows) * width;
  void* out16 = HalfCopyTarget(context, values);
  DEFT_RETURN_IF_ERROR(LaunchRmsNorm(static_cast<float*>(x), static_cast<const float*>(residual), weight, weightType,
                                     static_cast<float*>(out), out16, rows, width, epsilon, context->stream));
  RecordHalfCopy(context, outHandle, out16 != nullptr ? out : nullptr, values);
  return Status::Ok();
}

Status Rope(Handle xHandle, const int* positions, int rows, int numHeads, int headDim, double theta, bool half,
            const float* factors) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(xHandle, &context, &contextHandle));
  if (rows < 0 || numHeads < 1 || headDim < 2 || headDim % 2 != 0) return Status::Invalid("rope shape is invalid");
  void* x = nullptr;
  DEFT_RETURN_IF_ERROR(
      FindOutput(context, xHandle, contextHandle, static_cast<size_t>(rows) * numHeads * headDim * 4, "x", &x));
  if (rows == 0) return Status::Ok();
  const void* stagedPositions = nullptr;
  DEFT_RETURN_IF_ERROR(StageHost(context, positions, static_cast<size_t>(rows) * sizeof(int), &stagedPositions));
  const void* stagedFactors = nullptr;
  if (factors != nullptr) {
    DEFT_RETURN_IF_ERROR(StageHost(context, factors, static_cast<size_t>(headDim / 2) * sizeof(float), &stagedFactors));
  }
  return LaunchRope(static_cast<float*>(x), static_cast<const int*>(stagedPositions), rows, numHeads, headDim, theta,
                    half, static_cast<const float*>(stagedFactors), context->stream);
}

Status Elementwise(ElementwiseOp op, Handle aHandle, Handle bHandle, Handle outHandle, size_t count) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(aHandle, &context, &contextHandle));
  void* a = nullptr;
  void* b = nullptr;
  void* out = nullptr;
  DEFT_RETURN_IF_ERROR(FindOperand(aHandle, contextHandle, count * 4, "a", &a));
  DEFT_RETURN_IF_ERROR(FindOperand(bHandle, contextHandle, count * 4, "b", &b));
  DEFT_RETURN_IF_ERROR(FindOutput(context, outHandle, contextHandle, count * 4, "out", &out));
  const float* first = static_cast<const float*>(a);
  const float* second = static_cast<const float*>(b);
  float* target = static_cast<float*>(out);
  if (op == ElementwiseOp::kSwiglu) {
    void* out16 = HalfCopyTarget(context, count);
    DEFT_RETURN_IF_ERROR(LaunchSwiglu(first, second, target, out16, count, context->stream));
    RecordHalfCopy(context, outHandle, out16 != nullptr ? out : nullptr, count);
    return Status::Ok();
  }
  return LaunchAdd(first, second, target, count, context->stream);
}

Status Softmax(Handle xHandle, Handle outHandle, int rows, int columns, float temperature, bool logarithm) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(xHandle, &context, &contextHandle));
  if (rows < 0 || columns < 1 || !(temperature > 0.0f)) return Status::Invalid("softmax arguments are invalid");
  void* x = nullptr;
  void* out = nullptr;
  const size_t bytes = static_cast<size_t>(rows) * columns * 4;
  DEFT_RETURN_IF_ERROR(FindOperand(xHandle, contextHandle, bytes, "x", &x));
  DEFT_RETURN_IF_ERROR(FindOutput(context, outHandle, contextHandle, bytes, "out", &out));
  return LaunchSoftmax(static_cast<const float*>(x), static_cast<float*>(out), rows, columns, temperature, logarithm,
                       context->stream);
}

Status TopK(Handle xHandle, int rows, int columns, int k, int* indices, float* values) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(xHandle, &context, &contextHandle));
  if (rows < 0 || columns < 1 || k < 1 || k > columns) return Status::Invalid("topK arguments are invalid");
  void* x = nullptr;
  DEFT_RETURN_IF_ERROR(FindOperand(xHandle, contextHandle, static_cast<size_t>(rows) * columns * 4, "x", &x));
  if (rows == 0) return Status::Ok();
  const size_t picks = static_cast<size_t>(rows) * k;
  const size_t indexBytes = (picks * sizeof(int) + 255) / 256 * 256;
  DEFT_RETURN_IF_ERROR(EnsureStaging(context, indexBytes + picks * sizeof(float)));
  unsigned char* staging = static_cast<unsigned char*>(context->staging);
  int* deviceIndices = reinterpret_cast<int*>(staging);
  float* deviceValues = reinterpret_cast<float*>(staging + indexBytes);
  DEFT_RETURN_IF_ERROR(LaunchTopK(static_cast<const float*>(x), rows, columns, k, deviceIndices, deviceValues,
                                  context->stream));
  DEFT_CUDA_CHECK(
      cudaMemcpyAsync(indices, deviceIndices, picks * sizeof(int), cudaMemcpyDeviceToHost, context->stream));
  if (values != nullptr) {
    DEFT_CUDA_CHECK(
        cudaMemcpyAsync(values, deviceValues, picks * sizeof(float), cudaMemcpyDeviceToHost, context->stream));
  }
  DEFT_CUDA_CHECK(cudaStreamSynchronize(context->stream));
  return Status::Ok();
}

Status CopySlots(Handle storageHandle, const int* source, const int* target, int count) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  if (count < 0) return Status::Invalid("count must be non-negative");
  DEFT_RETURN_IF_ERROR(CheckSlots(storage, source, count));
  DEFT_RETURN_IF_ERROR(CheckSlots(storage, target, count));
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  if (count == 0) return Status::Ok();
  const int* stagedSource = nullptr;
  const int* stagedTarget = nullptr;
  DEFT_RETURN_IF_ERROR(StagePairs(context, source, target, count, &stagedSource, &stagedTarget));
  const StorageDescriptor& descriptor = storage->descriptor;
  const size_t rowBytes = static_cast<size_t>(descriptor.numKvHeads) * descriptor.headDim * storage->elementBytes;
  return LaunchCopySlots(storage->pointer, storage->regionBytes, 2 * descriptor.numLayers, rowBytes, stagedSource,
                         stagedTarget, count, context->stream);
}

Status FillUniform(Handle handle, KvType type, size_t count, unsigned long long seed, float low, float high) {
  Context* context = nullptr;
  Handle contextHandle = 0;
  DEFT_RETURN_IF_ERROR(EnterBuffer(handle, &context, &contextHandle));
  void* pointer = nullptr;
  DEFT_RETURN_IF_ERROR(FindOutput(context, handle, contextHandle, count * ElementBytes(type), "buffer", &pointer));
  return LaunchFillUniform(pointer, type, count, seed, low, high, context->stream);
}

Status FillStorageUniform(Handle storageHandle, unsigned long long seed, float low, float high) {
  Storage* storage = Find(storages, storageHandle);
  if (storage == nullptr) return MissingHandle("KV storage", storageHandle);
  Context* context = nullptr;
  DEFT_RETURN_IF_ERROR(Enter(storage->context, &context));
  const size_t count = storage->regionBytes / storage->elementBytes * 2 * storage->descriptor.numLayers;
  return LaunchFillUniform(storage->pointer, storage->descriptor.type, count, seed, low, high, context->stream);
}

}  // namespace deft
