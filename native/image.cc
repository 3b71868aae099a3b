// JPEG and WebP blocks of TIFF files, decoded by libjpeg-turbo and libwebp: the libraries GDAL's libtiff decodes
// them with, so the values are GDAL's (JPEG's YCbCr upsampled and converted as libjpeg does). The caller
// (lib/data/formats/tiff/codecs.ts) names the block's size from the file's tags; a frame that does not fit it, or
// data libjpeg finds corrupt (a warning, which libjpeg would otherwise decode past), is refused with the library's
// message, never decoded into memory the tags did not declare.
#include "common.h"

// libjpeg's header needs size_t and FILE declared before it.
#include <cstdio>
#include <csetjmp>
#include <cstring>

#include <jpeglib.h>
#include <webp/decode.h>

namespace mmssl {
namespace {

// The largest block dimension TIFF's JPEG and WebP can hold (JPEG: 65535; WebP: 16383).
constexpr int64_t kMaxSide = 65535;
// libtiff stops a progressive JPEG after this many scans: a damaged stream can otherwise hold thousands, each a
// pass over the whole image.
constexpr int kMaxScans = 100;

struct Bytes {
  const uint8_t* data;
  size_t size;
};

Bytes bytes(const Args& a, size_t i) {
  if (!a[i].IsTypedArray() || a[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    a.typeError(i, "a Uint8Array");
  }
  auto array = a[i].As<Napi::Uint8Array>();
  return {array.Data(), array.ByteLength()};
}

int64_t side(const Args& a, size_t i, int64_t max) {
  int64_t n = a.int64(i);
  if (n < 1 || n > max)
    a.fail(ErrorKind::Argument,
           "argument " + std::to_string(i) + " must be 1 to " + std::to_string(max) + ", got " + std::to_string(n));
  return n;
}

// ---- JPEG ---------------------------------------------------------------------------------------------------------

// libjpeg reports a fatal error by calling error_exit, which must not return: it jumps back to decodeJpeg's setjmp.
// No C++ object with a destructor lives between the setjmp and a jump to it.
struct JpegErrors {
  jpeg_error_mgr manager;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

JpegErrors& errorsOf(j_common_ptr cinfo) { return *reinterpret_cast<JpegErrors*>(cinfo->err); }

[[noreturn]] void jpegFail(j_common_ptr cinfo) {
  JpegErrors& errors = errorsOf(cinfo);
  (*cinfo->err->format_message)(cinfo, errors.message);
  std::longjmp(errors.jump, 1);
}

// Level -1 is a warning: libjpeg met corrupt data and would go on with made-up samples. Other levels are traces.
void jpegMessage(j_common_ptr cinfo, int level) {
  if (level < 0) jpegFail(cinfo);
}

void jpegProgress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxScans) {
    std::snprintf(errorsOf(cinfo).message, JMSG_LENGTH_MAX, "more than %d progressive scans", kMaxScans);
    std::longjmp(errorsOf(cinfo).jump, 1);
  }
}

struct JpegBlock {
  Bytes data;
  Bytes tables;  // JPEGTables: an abbreviated stream of the tables the blocks share (size 0 when absent)
  bool toRgb;    // YCbCr converted to RGB, as libtiff's JPEGCOLORMODE_RGB (GDAL's reading); else samples as stored
  int64_t width, height, components;
  uint8_t* out;  // width * height * components bytes, rows the frame does not cover left as they are
};

// Whether the block decoded; otherwise `message` says why.
bool decodeJpeg(const JpegBlock& block, char (&message)[JMSG_LENGTH_MAX]) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpegFail;
  errors.manager.emit_message = jpegMessage;
  errors.message[0] = '\0';
  if (setjmp(errors.jump)) {
    std::memcpy(message, errors.message, sizeof(message));
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  errors.progress.progress_monitor = jpegProgress;
  cinfo.progress = &errors.progress;
  if (block.tables.size > 0) {
    jpeg_mem_src(&cinfo, block.tables.data, block.tables.size);
    jpeg_read_header(&cinfo, FALSE);
  }
  jpeg_mem_src(&cinfo, block.data.data, block.data.size);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.image_width > block.width || cinfo.image_height > block.height ||
      cinfo.num_components != block.components) {
    std::snprintf(errors.message, JMSG_LENGTH_MAX, "its JPEG frame is %ux%ux%d, not within the %ldx%ldx%ld block",
                  cinfo.image_width, cinfo.image_height, cinfo.num_components, static_cast<long>(block.width),
                  static_cast<long>(block.height), static_cast<long>(block.components));
    std::longjmp(errors.jump, 1);
  }
  // As libtiff: its YCbCr converted to RGB when asked, otherwise no colour conversion at all.
  cinfo.jpeg_color_space = block.toRgb ? JCS_YCbCr : JCS_UNKNOWN;
  cinfo.out_color_space = block.toRgb ? JCS_RGB : JCS_UNKNOWN;
  jpeg_start_decompress(&cinfo);
  const size_t stride = static_cast<size_t>(block.width * block.components);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = block.out + cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  // Not jpeg_finish_decompress: what follows the last row (padding, a missing end marker) is no part of the pixels.
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// jpegDecode(data, tables | null, toRgb, width, height, components): the block's samples, interleaved, 8-bit.
Napi::Value jpegDecode(Args& a) {
  Bytes data = bytes(a, 0);
  Bytes tables = a.isAbsent(1) ? Bytes{nullptr, 0} : bytes(a, 1);
  bool toRgb = a.boolean(2);
  int64_t width = side(a, 3, kMaxSide), height = side(a, 4, kMaxSide), components = side(a, 5, 4);
  if (toRgb && components != 3) a.fail(ErrorKind::Argument, "YCbCr to RGB needs 3 components");
  auto out = Napi::Uint8Array::New(a.env(), static_cast<size_t>(width * height * components));
  char message[JMSG_LENGTH_MAX];
  if (!decodeJpeg({data, tables, toRgb, width, height, components, out.Data()}, message)) {
    a.fail(ErrorKind::Argument, std::string("JPEG data do not decode: ") + message);
  }
  return out;
}

// ---- WebP ---------------------------------------------------------------------------------------------------------

// webpDecode(data, width, height, channels): RGB (3) or RGBA (4) samples, as libtiff decodes a TIFF's WebP block.
Napi::Value webpDecode(Args& a) {
  Bytes data = bytes(a, 0);
  int64_t width = side(a, 1, kMaxSide), height = side(a, 2, kMaxSide), channels = a.int64(3);
  if (channels != 3 && channels != 4) a.fail(ErrorKind::Argument, "WebP decodes to 3 or 4 channels");
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(data.data, data.size, &features) != VP8_STATUS_OK) {
    a.fail(ErrorKind::Argument, "its WebP data do not start with a WebP header");
  }
  if (features.width != width || features.height > height) {
    a.fail(ErrorKind::Argument, "its WebP image is " + std::to_string(features.width) + "x" +
                                    std::to_string(features.height) + ", not within the " + std::to_string(width) +
                                    "x" + std::to_string(height) + " block");
  }
  auto out = Napi::Uint8Array::New(a.env(), static_cast<size_t>(width * height * channels));
  const int stride = static_cast<int>(width * channels);
  const size_t size = static_cast<size_t>(stride) * features.height;
  uint8_t* decoded = channels == 4 ? WebPDecodeRGBAInto(data.data, data.size, out.Data(), size, stride)
                                   : WebPDecodeRGBInto(data.data, data.size, out.Data(), size, stride);
  if (decoded == nullptr) a.fail(ErrorKind::Argument, "WebP data do not decode");
  return out;
}

const Export kExports[] = {
    {"jpegDecode", jpegDecode},
    {"webpDecode", webpDecode},
};

}  // namespace

void initImage(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
