cmd_Release/obj.target/deft_cuda/src/addon.o := g++ -o Release/obj.target/deft_cuda/src/addon.o ../src/addon.cc '-DNODE_GYP_MODULE_NAME=deft_cuda' '-DUSING_UV_SHARED=1' '-DUSING_V8_SHARED=1' '-DV8_DEPRECATION_WARNINGS=1' '-D_GLIBCXX_USE_CXX11_ABI=1' '-D_FILE_OFFSET_BITS=64' '-D_LARGEFILE_SOURCE' '-D__STDC_FORMAT_MACROS' '-DOPENSSL_NO_PINSHARED' '-DOPENSSL_THREADS' '-DNAPI_VERSION=8' '-DNODE_ADDON_API_DISABLE_DEPRECATED' '-DNAPI_CPP_EXCEPTIONS' '-DBUILDING_NODE_EXTENSION' -I/usr/include/node -I/usr/src -I/usr/deps/openssl/config -I/usr/deps/openssl/openssl/include -I/usr/deps/uv/include -I/usr/deps/zlib -I/usr/deps/v8/include -I../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api -I/usr/local/cuda-13.0/include -I../src  -fPIC -pthread -Wall -Wextra -Wno-unused-parameter -m64 -O3 -fno-omit-frame-pointer -fno-rtti -O3 -std=c++17 -fexceptions -Wall -MMD -MF ./Release/.deps/Release/obj.target/deft_cuda/src/addon.o.d.raw   -c
Release/obj.target/deft_cuda/src/addon.o: ../src/addon.cc \
 ../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi.h \
 /usr/include/node/node_api.h /usr/include/node/js_native_api.h \
 /usr/include/node/js_native_api_types.h \
 /usr/include/node/node_api_types.h \
 ../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi-inl.h \
 ../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi.h \
 ../src/runtime/runtime.h ../src/core/status.h \
 /usr/local/cuda-13.0/include/cuda_runtime_api.h \
 /usr/local/cuda-13.0/include/crt/host_defines.h \
 /usr/local/cuda-13.0/include/builtin_types.h \
 /usr/local/cuda-13.0/include/device_types.h \
 /usr/local/cuda-13.0/include/driver_types.h \
 /usr/local/cuda-13.0/include/vector_types.h \
 /usr/local/cuda-13.0/include/surface_types.h \
 /usr/local/cuda-13.0/include/texture_types.h \
 /usr/local/cuda-13.0/include/cuda_device_runtime_api.h \
 ../src/kernels/kernels.h
../src/addon.cc:
../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi.h:
/usr/include/node/node_api.h:
/usr/include/node/js_native_api.h:
/usr/include/node/js_native_api_types.h:
/usr/include/node/node_api_types.h:
../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi-inl.h:
../../../../node_modules/.pnpm/node-addon-api@8.9.2/node_modules/node-addon-api/napi.h:
../src/runtime/runtime.h:
../src/core/status.h:
/usr/local/cuda-13.0/include/cuda_runtime_api.h:
/usr/local/cuda-13.0/include/crt/host_defines.h:
/usr/local/cuda-13.0/include/builtin_types.h:
/usr/local/cuda-13.0/include/device_types.h:
/usr/local/cuda-13.0/include/driver_types.h:
/usr/local/cuda-13.0/include/vector_types.h:
/usr/local/cuda-13.0/include/surface_types.h:
/usr/local/cuda-13.0/include/texture_types.h:
/usr/local/cuda-13.0/include/cuda_device_runtime_api.h:
../src/kernels/kernels.h:
