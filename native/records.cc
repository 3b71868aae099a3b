// Packed datasets (lib/data/packed): fixed-size records read with pread straight into one batch tensor, off the JS
// thread, and the CRC-32 that guards each record (zlib's: the copy every Node process carries, as Node's docs offer
// it to addons; Python's zlib.crc32 computes the same).
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace mmssl {
namespace {

uint32_t crc32Of(const uint8_t* data, size_t bytes, uLong crc = crc32(0L, Z_NULL, 0)) {
  constexpr size_t kChunk = 1u << 30;  // zlib's length is 32-bit
  for (size_t done = 0; done < bytes; done += kChunk)
    crc = crc32(crc, data + done, static_cast<uInt>(std::min(kChunk, bytes - done)));
  return static_cast<uint32_t>(crc);
}

// Reads `bytes` at `offset` of `fd` into `row`; returns how many arrived (fewer only at the end of the file).
size_t readFully(int fd, uint8_t* row, size_t bytes, int64_t offset) {
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = pread(fd, row + got, bytes - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("cannot read: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

// readRecords(dest uint8 [B, R], fds[B], offsets[B]) -> Promise<number[B]>: row i of dest gets the R bytes at
// offsets[i] of fds[i]; the promise holds each row's CRC-32, or -1 for a record the file ends inside.
Napi::Value readRecords(Args& a) {
  at::Tensor dest = a.tensor(0);
  std::vector<int64_t> fds = a.ints(1), offsets = a.ints(2);
  if (dest.scalar_type() != at::kByte || !dest.is_cpu() || !dest.is_contiguous() || dest.dim() != 2)
    a.fail(ErrorKind::Argument, "readRecords: a contiguous uint8 CPU tensor [records, bytes]");
  if (fds.size() != offsets.size() || static_cast<int64_t>(fds.size()) != dest.size(0))
    a.fail(ErrorKind::Argument, "readRecords: one file and one offset per row of the tensor");
  return PromiseWorker::start(a, [dest, fds, offsets]() -> PromiseWorker::Completion {
    const size_t bytes = static_cast<size_t>(dest.size(1));
    auto crcs = std::make_shared<std::vector<double>>(fds.size());
    for (size_t i = 0; i < fds.size(); i++) {
      uint8_t* row = dest.data_ptr<uint8_t>() + i * bytes;
      size_t got = readFully(static_cast<int>(fds[i]), row, bytes, offsets[i]);
      (*crcs)[i] = got < bytes ? -1.0 : static_cast<double>(crc32Of(row, bytes));
    }
    return [crcs](Napi::Env env) -> Napi::Value {
      Napi::Array out = Napi::Array::New(env, crcs->size());
      for (size_t i = 0; i < crcs->size(); i++) out.Set(static_cast<uint32_t>(i), (*crcs)[i]);
      return out;
    };
  });
}

// crc32(bytes, previous?): the CRC-32 of `bytes`, or of the bytes before them (whose CRC is `previous`) and them.
Napi::Value crc32Bytes(Args& a) {
  if (!a[0].IsTypedArray()) a.typeError(0, "a Uint8Array");
  auto array = a[0].As<Napi::TypedArray>();
  const auto* data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  uLong previous = a.isAbsent(1) ? crc32(0L, Z_NULL, 0) : static_cast<uLong>(a.int64(1));
  return a.value(static_cast<double>(crc32Of(data, array.ByteLength(), previous)));
}

const Export kExports[] = {
    {"readRecords", readRecords},
    {"crc32", crc32Bytes},
};

}  // namespace

void initRecords(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
