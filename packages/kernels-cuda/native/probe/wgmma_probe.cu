// Checks the wgmma operand layouts of the task kernel on a device, one product at a time, against a
// host computation: S = Q K^T (K-major B, m64n64k16 x 8) and O = P V (transposed B, m64n128k16 x 4), with
// K and V staged exactly as the task kernel stages them (wgmma_primitives.cuh). Prints the largest error
// of each product and the first mismatching element, exits 1 on a mismatch.
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I../src wgmma_probe.cu -o wgmma_probe
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/device_primitives.cuh"
#include "kernels/wgmma_primitives.cuh"

using namespace deft::device;

constexpr int kTokens = 64;

__device__ int StagedOffset(int row, int chunk) {
  return (chunk >> 3) * (kTokens * 64) + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

// q: [64][kDim] fp16 rows, k, v: [64 tokens][kDim] fp16, p: [64][64] fp16; s: [64][64] f32, o: [64][kDim] f32.
template <int kDim>
__global__ void Probe(const half* q, const half* k, const half* v, const half* p, float* s, float* o) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char raw[];
  const uint32_t start = SharedAddress(raw);
  half* tile = reinterpret_cast<half*>(raw + (((start + 1023u) & ~1023u) - start));
  half* keyTile = tile;
  half* valueTile = tile + kTokens * kDim;
  for (int index = threadIdx.x; index < kTokens * kDim / 8; index += blockDim.x) {
    const int row = index / (kDim / 8);
    const int chunk = index % (kDim / 8);
    *reinterpret_cast<int4*>(keyTile + StagedOffset(row, chunk)) = *reinterpret_cast<const int4*>(k + row * kDim + chunk * 8);
    *reinterpret_cast<int4*>(valueTile + StagedOffset(row, chunk)) =
        *reinterpret_cast<const int4*>(v + row * kDim + chunk * 8);
  }
  FenceProxyAsyncShared();
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int group = lane >> 2;
  const int column = (lane & 3) * 2;
  const int rowLow = warp * 16 + group;
  const int rowHigh = rowLow + 8;
  auto pack = [](const half* pointer) { return *reinterpret_cast<const uint32_t*>(pointer); };
  uint32_t queryFragments[kDim / 16][4];
  for (int step = 0; step < kDim / 16; ++step) {
    queryFragments[step][0] = pack(q + rowLow * kDim + step * 16 + column);
    queryFragments[step][1] = pack(q + rowHigh * kDim + step * 16 + column);
    queryFragments[step][2] = pack(q + rowLow * kDim + step * 16 + column + 8);
    queryFragments[step][3] = pack(q + rowHigh * kDim + step * 16 + column + 8);
  }
  const uint32_t keyAddress = SharedAddress(keyTile);
  const uint64_t keyDescriptor = SwizzledDescriptor(keyAddress, 16, 1024);
  const uint64_t valueDescriptor = SwizzledDescriptor(SharedAddress(valueTile), kTokens * 128, 1024);
  float scores[32];
  WgmmaFence();
  for (int step = 0; step < kDim / 16; ++step) {
    const uint32_t offset = (step >> 2) * (kTokens * 128) + (step & 3) * 32;
    WgmmaM64N64K16(scores, queryFragments[step], keyDescriptor + (offset >> 4), step);
  }
  WgmmaCommit();
  WgmmaWait<0>();
  FenceRegisters(scores);
  for (int tile = 0; tile < 8; ++tile) {
    s[rowLow * 64 + tile * 8 + column] = scores[tile * 4];
    s[rowLow * 64 + tile * 8 + column + 1] = scores[tile * 4 + 1];
    s[rowHigh * 64 + tile * 8 + column] = scores[tile * 4 + 2];
    s[rowHigh * 64 + tile * 8 + column + 1] = scores[tile * 4 + 3];
  }
  uint32_t probabilities[4][4];
  for (int step = 0; step < 4; ++step) {
    probabilities[step][0] = pack(p + rowLow * 64 + step * 16 + column);
    probabilities[step][1] = pack(p + rowHigh * 64 + step * 16 + column);
    probabilities[step][2] = pack(p + rowLow * 64 + step * 16 + column + 8);
    probabilities[step][3] = pack(p + rowHigh * 64 + step * 16 + column + 8);
  }
  float out[kDim / 2];
  for (int index = 0; index < kDim / 2; ++index) out[index] = 0.0f;
  FenceRegisters(out);
  WgmmaFence();
  for (int step = 0; step < 4; ++step) {
    if constexpr (kDim == 128) {
      WgmmaM64N128K16Transposed(out, probabilities[step], valueDescriptor + ((step * 2048) >> 4));
    } else {
      WgmmaM64N64K16Transposed(out, probabilities[step], valueDescriptor + ((step * 2048) >> 4));
    }
  }
  WgmmaCommit();
  WgmmaWait<0>();
  FenceRegisters(out);
  for (int tile = 0; tile < kDim / 8; ++tile) {
    o[rowLow * kDim + tile * 8 + column] = out[tile * 4];
    o[rowLow * kDim + tile * 8 + column + 1] = out[tile * 4 + 1];
    o[rowHigh * kDim + tile * 8 + column] = out[tile * 4 + 2];
    o[rowHigh * kDim + tile * 8 + column + 1] = out[tile * 4 + 3];
  }
#endif
}

template <int kDim>
bool RunProbe() {
  std::vector<half> q(64 * kDim), k(kTokens * kDim), v(kTokens * kDim), p(64 * 64);
  std::vector<float> qf(q.size()), kf(k.size()), vf(v.size()), pf(p.size());
  unsigned state = 12345;
  auto next = [&]() {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(static_cast<int>((state >> 9) % 33) - 16) / 16.0f;  // exact in fp16
  };
  for (size_t i = 0; i < q.size(); ++i) q[i] = __float2half(qf[i] = next());
  for (size_t i = 0; i < k.size(); ++i) k[i] = __float2half(kf[i] = next());
  for (size_t i = 0; i < v.size(); ++i) v[i] = __float2half(vf[i] = next());
  for (size_t i = 0; i < p.size(); ++i) p[i] = __float2half(pf[i] = next());
  half *dq, *dk, *dv, *dp;
  float *ds, *dout;
  cudaMalloc(&dq, q.size() * 2);
  cudaMalloc(&dk, k.size() * 2);
  cudaMalloc(&dv, v.size() * 2);
  cudaMalloc(&dp, p.size() * 2);
  cudaMalloc(&ds, 64 * 64 * 4);
  cudaMalloc(&dout, 64 * kDim * 4);
  cudaMemcpy(dq, q.data(), q.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dk, k.data(), k.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, v.data(), v.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dp, p.data(), p.size() * 2, cudaMemcpyHostToDevice);
  const int shared = 2 * kTokens * kDim * 2 + 1024;
  cudaFuncSetAttribute(Probe<kDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, shared);
  Probe<kDim><<<1, 128, shared>>>(dq, dk, dv, dp, ds, dout);
  const cudaError_t error = cudaDeviceSynchronize();
  if (error != cudaSuccess) {
    std::printf("wgmma probe d%d: launch failed: %s\n", kDim, cudaGetErrorString(error));
    return false;
  }
  std::vector<float> s(64 * 64), o(64 * kDim);
  cudaMemcpy(s.data(), ds, s.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(o.data(), dout, o.size() * 4, cudaMemcpyDeviceToHost);
  bool ok = true;
  double worst = 0;
  int firstBad = -1;
  for (int row = 0; row < 64; ++row) {
    for (int token = 0; token < 64; ++token) {
      double expected = 0;
      for (int d = 0; d < kDim; ++d) expected += qf[row * kDim + d] * kf[token * kDim + d];
      const double difference = std::fabs(expected - s[row * 64 + token]);
      if (difference > worst) worst = difference;
      if (difference > 1e-3 && firstBad < 0) firstBad = row * 64 + token;
    }
  }
  std::printf("wgmma probe d%d S = Q K^T: max abs error %.3g", kDim, worst);
  if (firstBad >= 0) {
    ok = false;
    std::printf(" FIRST MISMATCH row %d token %d: got %g\n", firstBad / 64, firstBad % 64, s[firstBad]);
  } else {
    std::printf(" ok\n");
  }
  worst = 0;
  firstBad = -1;
  for (int row = 0; row < 64; ++row) {
    for (int d = 0; d < kDim; ++d) {
      double expected = 0;
      for (int token = 0; token < 64; ++token) expected += pf[row * 64 + token] * vf[token * kDim + d];
      const double difference = std::fabs(expected - o[row * kDim + d]);
      if (difference > worst) worst = difference;
      if (difference > 1e-3 && firstBad < 0) firstBad = row * kDim + d;
    }
  }
  std::printf("wgmma probe d%d O = P V: max abs error %.3g", kDim, worst);
  if (firstBad >= 0) {
    ok = false;
    std::printf(" FIRST MISMATCH row %d dim %d: got %g\n", firstBad / kDim, firstBad % kDim, o[firstBad]);
  } else {
    std::printf(" ok\n");
  }
  return ok;
}

int main() {
  const bool d128 = RunProbe<128>();
  const bool d64 = RunProbe<64>();
  return d128 && d64 ? 0 : 1;
}
