{
  "variables": {
    "mmssl_libtorch": "LibTorch 1.13.0 (CPU) from system: /usr/lib/x86_64-linux-gnu",
    "mmssl_flavour": "torch-1_13-cpu"
  },
  "target_defaults": {
    "sources": [
      "native/addon.cc",
      "native/autograd.cc",
      "native/common.cc",
      "native/distributed.cc",
      "native/functional.cc",
      "native/loss.cc",
      "native/ops.cc",
      "native/optim.cc",
      "native/runtime.cc",
      "native/tensor.cc"
    ],
    "include_dirs": [
      "/work/main/node_modules/node-addon-api",
      "/usr/include",
      "/usr/include/torch/csrc/api/include"
    ],
    "defines": [
      "NAPI_VERSION=8",
      "NAPI_CPP_EXCEPTIONS",
      "NODE_ADDON_API_DISABLE_DEPRECATED",
      "NDEBUG",
      "_GLIBCXX_USE_CXX11_ABI=1",
      "USE_DISTRIBUTED",
      "USE_C10D_GLOO",
      "USE_RPC",
      "USE_TENSORPIPE"
    ],
    "cflags_cc": [
      "-std=c++17",
      "-O3",
      "-pthread",
      "-fexceptions",
      "-frtti",
      "-fopenmp-simd",
      "-Wall",
      "-Wno-unused-parameter"
    ],
    "libraries": [
      "-L/usr/lib/x86_64-linux-gnu",
      "-Wl,-rpath,/usr/lib/x86_64-linux-gnu",
      "-ltorch",
      "-ltorch_cpu",
      "-lc10"
    ]
  }
}
