# node-gyp's build (prebuildify uses it). Everything but the target's name comes from libtorch.gypi, which
# scripts/build.mjs writes with LibTorch discovery (scripts/find-libtorch.mjs --write) and CMakeLists.txt reads too;
# the exclusions drop node-gyp's defaults that the shared flags replace.
{
  "includes": ["libtorch.gypi"],
  "targets": [
    {
      "target_name": "mmssl",
      "cflags!": ["-fno-exceptions", "-fno-rtti", "-Wextra", "-fno-omit-frame-pointer", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"]
    }
  ]
}
