// Device primitives shared by the attention kernels: cp.async, ldmatrix, mma.sync m16n8k16,
// programmatic dependent launch, fp16 packing and the swizzled shared-memory tile layout.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace deft {
namespace device {

__device__ __forceinline__ uint32_t SharedAddress(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

/** 16-byte asynchronous global -> shared copy; zero-fills the destination when `valid` is false. */
__device__ __forceinline__ void CopyAsync16(void* shared, const void* global, bool valid) {
  const int sourceBytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(shared)), "l"(global),
               "r"(sourceBytes)
               : "memory");
}

__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int Pending>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

/** Waits until at most `pending` copy groups are in flight (waits longer when `pending` > 7: safe). */
__device__ __forceinline__ void CopyAsyncWaitAtMost(int pending) {
  switch (pending) {
    case 0: CopyAsyncWait<0>(); break;
    case 1: CopyAsyncWait<1>(); break;
    case 2: CopyAsyncWait<2>(); break;
    case 3: CopyAsyncWait<3>(); break;
    case 4: CopyAsyncWait<4>(); break;
    case 5: CopyAsyncWait<5>(); break;
    case 6: CopyAsyncWait<6>(); break;
    default: CopyAsyncWait<7>(); break;
  }
}

__device__ __forceinline__ void LoadMatrixX4(uint32_t (&registers)[4], const void* shared) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(registers[0]), "=r"(registers[1]), "=r"(registers[2]), "=r"(registers[3])
               : "r"(SharedAddress(shared)));
}

__device__ __forceinline__ void LoadMatrixX4Transposed(uint32_t (&registers)[4], const void* shared) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(registers[0]), "=r"(registers[1]), "=r"(registers[2]), "=r"(registers[3])
               : "r"(SharedAddress(shared)));
}

/** d += a * b for one m16n8k16 tile: fp16 inputs, fp32 accumulators. */
__device__ __forceinline__ void Mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/** Lets the launch that depends on this one (the merge) start its blocks; it still waits for our writes. */
__device__ __forceinline__ void AllowDependentLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/** Waits until the launch this one depends on has finished and its writes are visible (no-op without PDL). */
__device__ __forceinline__ void WaitForPrerequisiteGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/** The device-wide nanosecond timer (the same clock on every multiprocessor). */
__device__ __forceinline__ unsigned long long GlobalTimer() {
  unsigned long long value;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(value));
  return value;
}

/** The multiprocessor this thread runs on. */
__device__ __forceinline__ unsigned int MultiprocessorId() {
  unsigned int value;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(value));
  return value;
}

__device__ __forceinline__ uint32_t PackHalf2(float low, float high) {
  const __half2 value = __floats2half2_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&value);
}

/** Offset (in halves) of 16-byte chunk `chunk` of row `row` in a swizzled [rows, Dim] fp16 tile. */
template <int Dim>
__device__ __forceinline__ int SwizzledOffset(int row, int chunk) {
  return row * Dim + ((chunk ^ (row & 7)) << 3);
}

}  // namespace device
}  // namespace deft
