// Status values returned by every host function of the addon. Exceptions never cross this layer:
// the N-API edge (addon.cc) turns a failed Status into a JavaScript error.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <utility>

namespace deft {

enum class StatusCode {
  kOk = 0,
  /** A CUDA runtime call or kernel launch failed. */
  kCuda,
  /** No usable device or driver (no GPU, no driver, driver too old). */
  kNoDevice,
  /** An argument was malformed (wrong handle kind, size, range). */
  kInvalidArgument,
  /** A handle does not name a live object (never created, or disposed). */
  kNotFound,
};

struct Status {
  StatusCode code = StatusCode::kOk;
  /** The `cudaError_t` behind a kCuda / kNoDevice status, else 0. */
  int cudaError = 0;
  std::string message;

  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return Status{}; }
  static Status Invalid(std::string message) { return Status{StatusCode::kInvalidArgument, 0, std::move(message)}; }
  static Status NotFound(std::string message) { return Status{StatusCode::kNotFound, 0, std::move(message)}; }
};

/** Builds the status of a failed CUDA call, classifying missing devices and drivers. */
Status CudaFailure(cudaError_t error, const char* expression, const char* file, int line);

}  // namespace deft

/** Runs a CUDA runtime call (or reads the launch error) and returns its failure as a Status. */
#define DEFT_CUDA_CHECK(expression)                                                    \
  do {                                                                                 \
    const cudaError_t deftCudaError_ = (expression);                                   \
    if (deftCudaError_ != cudaSuccess) {                                               \
      return ::deft::CudaFailure(deftCudaError_, #expression, __FILE__, __LINE__);     \
    }                                                                                  \
  } while (0)

/** Returns early with a failed Status. */
#define DEFT_RETURN_IF_ERROR(expression)             \
  do {                                               \
    ::deft::Status deftStatus_ = (expression);       \
    if (!deftStatus_.ok()) return deftStatus_;       \
  } while (0)
