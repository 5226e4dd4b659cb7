# The deft_cuda addon: node-addon-api host code compiled by the C++ compiler, kernels (*.cu) compiled
# by nvcc through the rule below and linked in, CUDA runtime linked statically. Built by
# ../scripts/build-native.mjs, which finds nvcc and sets DEFT_CUDA_HOME and DEFT_NVCC.
{
  "variables": {
    "cuda_home%": "<!(node -p \"process.env.DEFT_CUDA_HOME || '/usr/local/cuda'\")",
    "nvcc%": "<!(node -p \"process.env.DEFT_NVCC || (process.env.DEFT_CUDA_HOME || '/usr/local/cuda') + '/bin/nvcc'\")",
  },
  "targets": [
    {
      "target_name": "deft_cuda",
      "sources": [
        "src/addon.cc",
        "src/runtime/runtime.cc",
        "src/kernels/tree_attention.cu",
        "src/kernels/task_attention.cu",
        "src/kernels/kv_ops.cu",
        "src/kernels/bench_ops.cu",
        "src/kernels/model_ops.cu",
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(cuda_home)/include",
        "src",
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-Wall"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["<(cuda_home)/lib64/libcudart_static.a", "-ldl", "-lpthread", "-lrt"],
      "rules": [
        {
          "rule_name": "nvcc",
          "extension": "cu",
          "inputs": ["<(RULE_INPUT_PATH)", "src/kernels/kernels.h", "src/kernels/device_primitives.cuh", "src/core/status.h"],
          "outputs": ["<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
          "action": [
            "<(nvcc)", "-O3", "-std=c++17", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
            "-gencode=arch=compute_80,code=sm_80",
            "-gencode=arch=compute_90a,code=sm_90a",
            "-gencode=arch=compute_90,code=compute_90",
            "-I<(module_root_dir)/src", "-c", "<(RULE_INPUT_PATH)", "-o", "<@(_outputs)",
          ],
          "message": "nvcc <(RULE_INPUT_PATH)",
          "process_outputs_as_sources": 1,
        },
      ],
    },
  ],
}
