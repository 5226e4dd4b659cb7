// The N-API edge of the addon: checks and converts JavaScript arguments to plain values, calls the
// runtime (which returns Status values and never throws), and turns a failed Status into a thrown
// JavaScript error carrying `deftStatus` ("cuda", "no-device", "invalid-argument", "not-found") and
// `cudaError` (the cudaError_t number, 0 when none). The TypeScript loader maps these to typed errors.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <string>

#include "runtime/runtime.h"

namespace {

using deft::Handle;
using deft::Status;
using deft::StatusCode;

const char* StatusName(StatusCode code) {
  switch (code) {
    case StatusCode::kCuda: return "cuda";
    case StatusCode::kNoDevice: return "no-device";
    case StatusCode::kInvalidArgument: return "invalid-argument";
    case StatusCode::kNotFound: return "not-found";
    default: return "ok";
  }
}

Napi::Error MakeError(Napi::Env env, StatusCode code, int cudaError, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("deftStatus", Napi::String::New(env, StatusName(code)));
  error.Value().Set("cudaError", Napi::Number::New(env, cudaError));
  return error;
}

void ThrowIfFailed(Napi::Env env, const Status& status) {
  if (!status.ok()) throw MakeError(env, status.code, status.cudaError, status.message);
}

[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& message) {
  throw MakeError(env, StatusCode::kInvalidArgument, 0, message);
}

double NumberArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowInvalid(info.Env(), std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

int64_t IntegerArgument(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t minimum, int64_t maximum) {
  const double value = NumberArgument(info, index, name);
  if (!std::isfinite(value) || std::floor(value) != value || value < static_cast<double>(minimum) ||
      value > static_cast<double>(maximum)) {
    ThrowInvalid(info.Env(), std::string(name) + " must be an integer in [" + std::to_string(minimum) + ", " +
                                 std::to_string(maximum) + "]");
  }
  return static_cast<int64_t>(value);
}

Handle HandleArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<Handle>(IntegerArgument(info, index, name, 1, std::numeric_limits<uint32_t>::max()));
}

/** A handle held in an array argument (a matmul group's weights and outs). */
Handle HandleValue(Napi::Env env, double value, const char* name) {
  if (!std::isfinite(value) || std::floor(value) != value || value < 1.0 ||
      value > static_cast<double>(std::numeric_limits<uint32_t>::max())) {
    ThrowInvalid(env, std::string(name) + " must hold handles (integers in [1, " +
                          std::to_string(std::numeric_limits<uint32_t>::max()) + "])");
  }
  return static_cast<Handle>(value);
}

int IntArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<int>(IntegerArgument(info, index, name, 0, std::numeric_limits<int32_t>::max()));
}

size_t SizeArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<size_t>(IntegerArgument(info, index, name, 0, int64_t{1} << 52));
}

template <typename T, napi_typedarray_type Type>
Napi::TypedArrayOf<T> TypedArgument(const Napi::CallbackInfo& info, size_t index, const char* name, const char* typeName) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != Type) {
    ThrowInvalid(info.Env(), std::string(name) + " must be a " + typeName);
  }
  return info[index].As<Napi::TypedArrayOf<T>>();
}

Napi::Int32Array Int32Argument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return TypedArgument<int32_t, napi_int32_array>(info, index, name, "Int32Array");
}

Napi::Float32Array Float32Argument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return TypedArgument<float, napi_float32_array>(info, index, name, "Float32Array");
}

Napi::Float64Array Float64Argument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return TypedArgument<double, napi_float64_array>(info, index, name, "Float64Array");
}

/** Any TypedArray as raw bytes. */
Napi::TypedArray BytesArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsTypedArray()) ThrowInvalid(info.Env(), std::string(name) + " must be a TypedArray");
  return info[index].As<Napi::TypedArray>();
}

uint8_t* BytesOf(const Napi::TypedArray& array) {
  return static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
}

deft::KvType DtypeArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const int64_t code = IntegerArgument(info, index, name, 0, 1);
  return code == 1 ? deft::KvType::kF16 : deft::KvType::kF32;
}

// ---------------------------------------------------------------------------------------------

Napi::Value ProbeDevices(const Napi::CallbackInfo& info) {
  const deft::DeviceProbe probe = deft::Probe();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("deviceCount", probe.deviceCount);
  result.Set("error", probe.error);
  result.Set("errorName", probe.errorName);
  result.Set("errorMessage", probe.errorMessage);
  result.Set("driverVersion", probe.driverVersion);
  result.Set("runtimeVersion", probe.runtimeVersion);
  return result;
}

Napi::Value CreateContext(const Napi::CallbackInfo& info) {
  Handle handle = 0;
  ThrowIfFailed(info.Env(), deft::CreateContext(IntArgument(info, 0, "device"), &handle));
  return Napi::Number::New(info.Env(), handle);
}

Napi::Value DestroyContext(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::DestroyContext(HandleArgument(info, 0, "context")));
  return info.Env().Undefined();
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  deft::DeviceInfo device;
  ThrowIfFailed(info.Env(), deft::GetDeviceInfo(HandleArgument(info, 0, "context"), &device));
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("name", device.name);
  result.Set("ordinal", device.ordinal);
  result.Set("multiprocessors", device.multiprocessors);
  result.Set("computeCapability", std::to_string(device.computeMajor) + "." + std::to_string(device.computeMinor));
  result.Set("l2Bytes", static_cast<double>(device.l2Bytes));
  result.Set("sharedBytesPerBlock", static_cast<double>(device.sharedPerBlockOptin));
  result.Set("totalMemory", static_cast<double>(device.totalMemory));
  result.Set("ringStagesLimit", device.ringStagesLimit);
  return result;
}

Napi::Value SynchronizeContext(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::Synchronize(HandleArgument(info, 0, "context")));
  return info.Env().Undefined();
}

Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Handle handle = 0;
  ThrowIfFailed(info.Env(), deft::Allocate(HandleArgument(info, 0, "context"), SizeArgument(info, 1, "bytes"), &handle));
  return Napi::Number::New(info.Env(), handle);
}

Napi::Value FreeBuffer(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FreeBuffer(HandleArgument(info, 0, "buffer")));
  return info.Env().Undefined();
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  const Napi::TypedArray data = BytesArgument(info, 2, "data");
  ThrowIfFailed(info.Env(), deft::Upload(HandleArgument(info, 0, "buffer"), SizeArgument(info, 1, "byteOffset"),
                                         BytesOf(data), data.ByteLength()));
  return info.Env().Undefined();
}

Napi::Value UploadF32AsF16(const Napi::CallbackInfo& info) {
  const Napi::Float32Array data = Float32Argument(info, 2, "data");
  ThrowIfFailed(info.Env(), deft::UploadF32AsF16(HandleArgument(info, 0, "buffer"), SizeArgument(info, 1, "elementOffset"),
                                                 data.Data(), data.ElementLength()));
  return info.Env().Undefined();
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  const Napi::TypedArray data = BytesArgument(info, 2, "target");
  ThrowIfFailed(info.Env(), deft::Download(HandleArgument(info, 0, "buffer"), SizeArgument(info, 1, "byteOffset"),
                                           BytesOf(data), data.ByteLength()));
  return info.Env().Undefined();
}

Napi::Value DownloadF16AsF32(const Napi::CallbackInfo& info) {
  Napi::Float32Array data = Float32Argument(info, 2, "target");
  ThrowIfFailed(info.Env(), deft::DownloadF16AsF32(HandleArgument(info, 0, "buffer"),
                                                   SizeArgument(info, 1, "elementOffset"), data.Data(),
                                                   data.ElementLength()));
  return info.Env().Undefined();
}

Napi::Value FillF32(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FillF32(HandleArgument(info, 0, "buffer"), SizeArgument(info, 1, "elementOffset"),
                                          SizeArgument(info, 2, "count"),
                                          static_cast<float>(NumberArgument(info, 3, "value"))));
  return info.Env().Undefined();
}

Napi::Value CopyBuffer(const Napi::CallbackInfo& info) {
  if (info.Length() < 4 || !info[3].IsBoolean()) ThrowInvalid(info.Env(), "useKernel must be a boolean");
  ThrowIfFailed(info.Env(), deft::CopyBuffer(HandleArgument(info, 0, "target"), HandleArgument(info, 1, "source"),
                                             SizeArgument(info, 2, "bytes"), info[3].As<Napi::Boolean>().Value()));
  return info.Env().Undefined();
}

Napi::Value CreateStorage(const Napi::CallbackInfo& info) {
  deft::StorageDescriptor descriptor;
  descriptor.numLayers = IntArgument(info, 1, "numLayers");
  descriptor.numPages = IntArgument(info, 2, "numPages");
  descriptor.pageSize = IntArgument(info, 3, "pageSize");
  descriptor.numKvHeads = IntArgument(info, 4, "numKvHeads");
  descriptor.headDim = IntArgument(info, 5, "headDim");
  descriptor.type = DtypeArgument(info, 6, "dtype");
  Handle handle = 0;
  ThrowIfFailed(info.Env(), deft::CreateStorage(HandleArgument(info, 0, "context"), descriptor, &handle));
  return Napi::Number::New(info.Env(), handle);
}

Napi::Value FreeStorage(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FreeStorage(HandleArgument(info, 0, "storage")));
  return info.Env().Undefined();
}

/** A writeKV source: a Float32Array (host) or a buffer handle (device, with the dtype in `dtypeIndex`). */
deft::KvSource SourceArgument(const Napi::CallbackInfo& info, size_t index, size_t dtypeIndex, const char* name) {
  deft::KvSource source;
  if (info.Length() > index && info[index].IsTypedArray()) {
    const Napi::Float32Array values = Float32Argument(info, index, name);
    source.host = values.Data();
    source.hostCount = values.ElementLength();
    return source;
  }
  source.buffer = HandleArgument(info, index, name);
  source.bufferType = DtypeArgument(info, dtypeIndex, "sourceDtype");
  return source;
}

Napi::Value WriteKv(const Napi::CallbackInfo& info) {
  const Handle storage = HandleArgument(info, 0, "storage");
  const int layer = IntArgument(info, 1, "layer");
  const Napi::Int32Array slots = Int32Argument(info, 2, "slots");
  const deft::KvSource k = SourceArgument(info, 3, 5, "k");
  const deft::KvSource v = SourceArgument(info, 4, 5, "v");
  ThrowIfFailed(info.Env(), deft::WriteKv(storage, layer, slots.Data(), static_cast<int>(slots.ElementLength()), k, v));
  return info.Env().Undefined();
}

Napi::Value ReadKv(const Napi::CallbackInfo& info) {
  const Napi::Int32Array slots = Int32Argument(info, 2, "slots");
  Napi::Float32Array k = Float32Argument(info, 3, "k");
  Napi::Float32Array v = Float32Argument(info, 4, "v");
  ThrowIfFailed(info.Env(), deft::ReadKv(HandleArgument(info, 0, "storage"), IntArgument(info, 1, "layer"), slots.Data(),
                                         static_cast<int>(slots.ElementLength()), k.Data(), k.ElementLength(), v.Data(),
                                         v.ElementLength()));
  return info.Env().Undefined();
}

Napi::Value CopyPages(const Napi::CallbackInfo& info) {
  const Napi::Int32Array source = Int32Argument(info, 1, "source");
  const Napi::Int32Array target = Int32Argument(info, 2, "target");
  if (source.ElementLength() != target.ElementLength()) ThrowInvalid(info.Env(), "source and target lengths differ");
  ThrowIfFailed(info.Env(), deft::CopyPages(HandleArgument(info, 0, "storage"), source.Data(), target.Data(),
                                            static_cast<int>(source.ElementLength())));
  return info.Env().Undefined();
}

Napi::Value PreparePlan(const Napi::CallbackInfo& info) {
  const Napi::Int32Array header = Int32Argument(info, 1, "header");
  if (header.ElementLength() != deft::kHeaderFieldCount) {
    ThrowInvalid(info.Env(), "header must hold " + std::to_string(deft::kHeaderFieldCount) + " fields");
  }
  const Napi::TypedArray bytes = BytesArgument(info, 2, "bytes");
  Handle handle = 0;
  deft::PlanSummary summary;
  ThrowIfFailed(info.Env(), deft::PreparePlan(HandleArgument(info, 0, "context"), header.Data(), BytesOf(bytes),
                                              bytes.ByteLength(), &handle, &summary));
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("handle", handle);
  result.Set("ringStages", summary.ringStages);
  result.Set("kernel", summary.kernel);
  result.Set("sharedBytes", static_cast<double>(summary.sharedBytes));
  return result;
}

Napi::Value FreePlan(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FreePlan(HandleArgument(info, 0, "plan")));
  return info.Env().Undefined();
}

Napi::Value TreeAttention(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::TreeAttention(HandleArgument(info, 0, "plan"), HandleArgument(info, 1, "storage"),
                                                IntArgument(info, 2, "layer"), HandleArgument(info, 3, "q"),
                                                HandleArgument(info, 4, "out"),
                                                static_cast<float>(NumberArgument(info, 5, "scale"))));
  return info.Env().Undefined();
}

Napi::Value ProfileTreeAttention(const Napi::CallbackInfo& info) {
  Napi::Float64Array profile = Float64Argument(info, 6, "profile");
  ThrowIfFailed(info.Env(), deft::ProfileTreeAttention(
                                HandleArgument(info, 0, "plan"), HandleArgument(info, 1, "storage"),
                                IntArgument(info, 2, "layer"), HandleArgument(info, 3, "q"), HandleArgument(info, 4, "out"),
                                static_cast<float>(NumberArgument(info, 5, "scale")), profile.Data(),
                                profile.ElementLength()));
  return info.Env().Undefined();
}

Napi::Value CreateEvent(const Napi::CallbackInfo& info) {
  Handle handle = 0;
  ThrowIfFailed(info.Env(), deft::CreateEvent(HandleArgument(info, 0, "context"), &handle));
  return Napi::Number::New(info.Env(), handle);
}

Napi::Value DestroyEvent(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::DestroyEvent(HandleArgument(info, 0, "event")));
  return info.Env().Undefined();
}

Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::RecordEvent(HandleArgument(info, 0, "event")));
  return info.Env().Undefined();
}

Napi::Value ElapsedMilliseconds(const Napi::CallbackInfo& info) {
  float milliseconds = 0.0f;
  ThrowIfFailed(info.Env(), deft::ElapsedMilliseconds(HandleArgument(info, 0, "start"), HandleArgument(info, 1, "end"),
                                                      &milliseconds));
  return Napi::Number::New(info.Env(), milliseconds);
}

Napi::Value FlushL2(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FlushL2(HandleArgument(info, 0, "context"), SizeArgument(info, 1, "bytes")));
  return info.Env().Undefined();
}

Napi::Value CreateSlotList(const Napi::CallbackInfo& info) {
  const Napi::Int32Array slots = Int32Argument(info, 1, "slots");
  Handle handle = 0;
  ThrowIfFailed(info.Env(), deft::CreateSlotList(HandleArgument(info, 0, "storage"), slots.Data(),
                                                 static_cast<int>(slots.ElementLength()), &handle));
  return Napi::Number::New(info.Env(), handle);
}

Napi::Value FreeSlotList(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FreeSlotList(HandleArgument(info, 0, "list")));
  return info.Env().Undefined();
}

Napi::Value ReadOnce(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::ReadOnce(HandleArgument(info, 0, "storage"), IntArgument(info, 1, "layer"),
                                           HandleArgument(info, 2, "list"), IntArgument(info, 3, "perHead") != 0));
  return info.Env().Undefined();
}

Napi::Value EmptyKernel(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::EmptyKernel(HandleArgument(info, 0, "context")));
  return info.Env().Undefined();
}

Napi::Value Spin(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::Spin(HandleArgument(info, 0, "context"),
                                       static_cast<unsigned long long>(IntegerArgument(info, 1, "nanoseconds", 0,
                                                                                       int64_t{60} * 1000000000))));
  return info.Env().Undefined();
}

Napi::Value MmaRate(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::MmaRate(HandleArgument(info, 0, "context"), IntArgument(info, 1, "blocks"),
                                          IntArgument(info, 2, "iterations")));
  return info.Env().Undefined();
}

// --- Model ops -------------------------------------------------------------------------------------

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  const Napi::Int32Array rows = Int32Argument(info, 3, "rows");
  ThrowIfFailed(info.Env(), deft::GatherRows(HandleArgument(info, 0, "table"), DtypeArgument(info, 1, "tableDtype"),
                                             IntArgument(info, 2, "tableRows"), rows.Data(),
                                             static_cast<int>(rows.ElementLength()), HandleArgument(info, 4, "out"),
                                             IntArgument(info, 5, "width")));
  return info.Env().Undefined();
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const Napi::Float64Array weights = Float64Argument(info, 1, "weights");
  const Napi::Float64Array outs = Float64Argument(info, 3, "outs");
  const Napi::Int32Array n = Int32Argument(info, 6, "n");
  const size_t count = weights.ElementLength();
  if (count < 1 || count > deft::kMaxMatmulGroup || outs.ElementLength() != count || n.ElementLength() != count) {
    ThrowInvalid(info.Env(), "weights, outs and n must hold the same 1 to " + std::to_string(deft::kMaxMatmulGroup) +
                                 " entries");
  }
  deft::Handle weightHandles[deft::kMaxMatmulGroup];
  deft::Handle outHandles[deft::kMaxMatmulGroup];
  for (size_t index = 0; index < count; ++index) {
    weightHandles[index] = HandleValue(info.Env(), weights[index], "weights");
    outHandles[index] = HandleValue(info.Env(), outs[index], "outs");
  }
  ThrowIfFailed(info.Env(), deft::Matmul(HandleArgument(info, 0, "x"), weightHandles, DtypeArgument(info, 2, "weightDtype"),
                                         outHandles, n.Data(), static_cast<int>(count), IntArgument(info, 4, "m"),
                                         IntArgument(info, 5, "k")));
  return info.Env().Undefined();
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const deft::Handle residual = info.Length() > 7 && !info[7].IsNull() && !info[7].IsUndefined()
                                    ? HandleArgument(info, 7, "residual")
                                    : 0;
  ThrowIfFailed(info.Env(), deft::RmsNorm(HandleArgument(info, 0, "x"), residual, HandleArgument(info, 1, "weight"),
                                          DtypeArgument(info, 2, "weightDtype"), HandleArgument(info, 3, "out"),
                                          IntArgument(info, 4, "rows"), IntArgument(info, 5, "width"),
                                          static_cast<float>(NumberArgument(info, 6, "epsilon"))));
  return info.Env().Undefined();
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  const Napi::Int32Array positions = Int32Argument(info, 1, "positions");
  const float* factors = nullptr;
  if (info.Length() > 6 && !info[6].IsNull() && !info[6].IsUndefined()) {
    const Napi::Float32Array array = Float32Argument(info, 6, "frequencyFactors");
    if (array.ElementLength() * 2 != static_cast<size_t>(IntArgument(info, 3, "headDim"))) {
      ThrowInvalid(info.Env(), "frequencyFactors must hold headDim / 2 values");
    }
    factors = array.Data();
  }
  ThrowIfFailed(info.Env(), deft::Rope(HandleArgument(info, 0, "x"), positions.Data(),
                                       static_cast<int>(positions.ElementLength()), IntArgument(info, 2, "numHeads"),
                                       IntArgument(info, 3, "headDim"), NumberArgument(info, 4, "theta"),
                                       IntArgument(info, 5, "half") != 0, factors));
  return info.Env().Undefined();
}

Napi::Value Elementwise(const Napi::CallbackInfo& info) {
  const int64_t op = IntegerArgument(info, 0, "op", 0, 1);
  ThrowIfFailed(info.Env(), deft::Elementwise(static_cast<deft::ElementwiseOp>(op), HandleArgument(info, 1, "a"),
                                              HandleArgument(info, 2, "b"), HandleArgument(info, 3, "out"),
                                              SizeArgument(info, 4, "count")));
  return info.Env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::Softmax(HandleArgument(info, 0, "x"), HandleArgument(info, 1, "out"),
                                          IntArgument(info, 2, "rows"), IntArgument(info, 3, "columns"),
                                          static_cast<float>(NumberArgument(info, 4, "temperature")),
                                          IntArgument(info, 5, "logarithm") != 0));
  return info.Env().Undefined();
}

Napi::Value TopK(const Napi::CallbackInfo& info) {
  Napi::Int32Array indices = Int32Argument(info, 4, "indices");
  float* values = nullptr;
  const int rows = IntArgument(info, 1, "rows");
  const int k = IntArgument(info, 3, "k");
  const size_t picks = static_cast<size_t>(rows) * static_cast<size_t>(k);
  if (indices.ElementLength() != picks) ThrowInvalid(info.Env(), "indices must hold rows * k values");
  if (info.Length() > 5 && !info[5].IsNull() && !info[5].IsUndefined()) {
    Napi::Float32Array array = Float32Argument(info, 5, "values");
    if (array.ElementLength() != picks) ThrowInvalid(info.Env(), "values must hold rows * k values");
    values = array.Data();
  }
  ThrowIfFailed(info.Env(), deft::TopK(HandleArgument(info, 0, "x"), rows, IntArgument(info, 2, "columns"), k,
                                       indices.Data(), values));
  return info.Env().Undefined();
}

Napi::Value CopySlots(const Napi::CallbackInfo& info) {
  const Napi::Int32Array source = Int32Argument(info, 1, "source");
  const Napi::Int32Array target = Int32Argument(info, 2, "target");
  if (source.ElementLength() != target.ElementLength()) ThrowInvalid(info.Env(), "source and target differ in length");
  ThrowIfFailed(info.Env(), deft::CopySlots(HandleArgument(info, 0, "storage"), source.Data(), target.Data(),
                                            static_cast<int>(source.ElementLength())));
  return info.Env().Undefined();
}

Napi::Value FillUniform(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FillUniform(HandleArgument(info, 0, "buffer"), DtypeArgument(info, 1, "dtype"),
                                              SizeArgument(info, 2, "count"),
                                              static_cast<unsigned long long>(SizeArgument(info, 3, "seed")),
                                              static_cast<float>(NumberArgument(info, 4, "low")),
                                              static_cast<float>(NumberArgument(info, 5, "high"))));
  return info.Env().Undefined();
}

Napi::Value FillStorageUniform(const Napi::CallbackInfo& info) {
  ThrowIfFailed(info.Env(), deft::FillStorageUniform(HandleArgument(info, 0, "storage"),
                                                     static_cast<unsigned long long>(SizeArgument(info, 1, "seed")),
                                                     static_cast<float>(NumberArgument(info, 2, "low")),
                                                     static_cast<float>(NumberArgument(info, 3, "high"))));
  return info.Env().Undefined();
}

/** Every exported function goes through this guard: no C++ exception escapes as a crash. */
template <Napi::Value (*Function)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return Function(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw MakeError(info.Env(), StatusCode::kInvalidArgument, 0, "out of host memory");
  } catch (const std::exception& error) {
    throw MakeError(info.Env(), StatusCode::kCuda, 0, error.what());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 3));
  exports.Set("probe", Napi::Function::New<Guarded<ProbeDevices>>(env, "probe"));
  exports.Set("createContext", Napi::Function::New<Guarded<CreateContext>>(env, "createContext"));
  exports.Set("destroyContext", Napi::Function::New<Guarded<DestroyContext>>(env, "destroyContext"));
  exports.Set("deviceInfo", Napi::Function::New<Guarded<DeviceInfo>>(env, "deviceInfo"));
  exports.Set("synchronize", Napi::Function::New<Guarded<SynchronizeContext>>(env, "synchronize"));
  exports.Set("allocate", Napi::Function::New<Guarded<Allocate>>(env, "allocate"));
  exports.Set("freeBuffer", Napi::Function::New<Guarded<FreeBuffer>>(env, "freeBuffer"));
  exports.Set("upload", Napi::Function::New<Guarded<Upload>>(env, "upload"));
  exports.Set("uploadF32AsF16", Napi::Function::New<Guarded<UploadF32AsF16>>(env, "uploadF32AsF16"));
  exports.Set("download", Napi::Function::New<Guarded<Download>>(env, "download"));
  exports.Set("downloadF16AsF32", Napi::Function::New<Guarded<DownloadF16AsF32>>(env, "downloadF16AsF32"));
  exports.Set("fillF32", Napi::Function::New<Guarded<FillF32>>(env, "fillF32"));
  exports.Set("copyBuffer", Napi::Function::New<Guarded<CopyBuffer>>(env, "copyBuffer"));
  exports.Set("createStorage", Napi::Function::New<Guarded<CreateStorage>>(env, "createStorage"));
  exports.Set("freeStorage", Napi::Function::New<Guarded<FreeStorage>>(env, "freeStorage"));
  exports.Set("writeKv", Napi::Function::New<Guarded<WriteKv>>(env, "writeKv"));
  exports.Set("readKv", Napi::Function::New<Guarded<ReadKv>>(env, "readKv"));
  exports.Set("copyPages", Napi::Function::New<Guarded<CopyPages>>(env, "copyPages"));
  exports.Set("preparePlan", Napi::Function::New<Guarded<PreparePlan>>(env, "preparePlan"));
  exports.Set("freePlan", Napi::Function::New<Guarded<FreePlan>>(env, "freePlan"));
  exports.Set("treeAttention", Napi::Function::New<Guarded<TreeAttention>>(env, "treeAttention"));
  exports.Set("createEvent", Napi::Function::New<Guarded<CreateEvent>>(env, "createEvent"));
  exports.Set("destroyEvent", Napi::Function::New<Guarded<DestroyEvent>>(env, "destroyEvent"));
  exports.Set("recordEvent", Napi::Function::New<Guarded<RecordEvent>>(env, "recordEvent"));
  exports.Set("elapsedMilliseconds", Napi::Function::New<Guarded<ElapsedMilliseconds>>(env, "elapsedMilliseconds"));
  exports.Set("flushL2", Napi::Function::New<Guarded<FlushL2>>(env, "flushL2"));
  exports.Set("createSlotList", Napi::Function::New<Guarded<CreateSlotList>>(env, "createSlotList"));
  exports.Set("freeSlotList", Napi::Function::New<Guarded<FreeSlotList>>(env, "freeSlotList"));
  exports.Set("profileTreeAttention",
              Napi::Function::New<Guarded<ProfileTreeAttention>>(env, "profileTreeAttention"));
  exports.Set("readOnce", Napi::Function::New<Guarded<ReadOnce>>(env, "readOnce"));
  exports.Set("emptyKernel", Napi::Function::New<Guarded<EmptyKernel>>(env, "emptyKernel"));
  exports.Set("spin", Napi::Function::New<Guarded<Spin>>(env, "spin"));
  exports.Set("mmaRate", Napi::Function::New<Guarded<MmaRate>>(env, "mmaRate"));
  exports.Set("gatherRows", Napi::Function::New<Guarded<GatherRows>>(env, "gatherRows"));
  exports.Set("matmul", Napi::Function::New<Guarded<Matmul>>(env, "matmul"));
  exports.Set("rmsNorm", Napi::Function::New<Guarded<RmsNorm>>(env, "rmsNorm"));
  exports.Set("rope", Napi::Function::New<Guarded<Rope>>(env, "rope"));
  exports.Set("elementwise", Napi::Function::New<Guarded<Elementwise>>(env, "elementwise"));
  exports.Set("softmax", Napi::Function::New<Guarded<Softmax>>(env, "softmax"));
  exports.Set("topK", Napi::Function::New<Guarded<TopK>>(env, "topK"));
  exports.Set("copySlots", Napi::Function::New<Guarded<CopySlots>>(env, "copySlots"));
  exports.Set("fillUniform", Napi::Function::New<Guarded<FillUniform>>(env, "fillUniform"));
  exports.Set("fillStorageUniform", Napi::Function::New<Guarded<FillStorageUniform>>(env, "fillStorageUniform"));
  return exports;
}

}  // namespace

NODE_API_MODULE(deft_cuda, Init)
