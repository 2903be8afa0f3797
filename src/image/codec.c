/* Format sniffing, decode dispatch, PNG (libpng) and WebP (libwebp) codecs.
 * Every decoder reads the header dimensions first and refuses images over
 * the limits before allocating anything proportional to them. */
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "image/image.h"
#include "image/image_internal.h"

void dg__image_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

dg_status dg__image_check_dims(int64_t w, int64_t h, const dg_image_limits *lim, char *err,
                               size_t errlen) {
  if (w <= 0 || h <= 0) {
    dg__image_err(err, errlen, "image: invalid dimensions %lldx%lld", (long long)w, (long long)h);
    return DG_STATUS_ERR_FORMAT;
  }
  if ((lim->max_side > 0 && (w > lim->max_side || h > lim->max_side)) ||
      (lim->max_pixels > 0 && w * h > lim->max_pixels) || w > 0x7FFFFFF || h > 0x7FFFFFF) {
    dg__image_err(err, errlen,
                  "image: %lldx%lld is too large (limits: %d pixels per side, %lld pixels)",
                  (long long)w, (long long)h, lim->max_side, (long long)lim->max_pixels);
    return DG_STATUS_ERR_LIMIT;
  }
  return DG_STATUS_OK;
}

dg_image_format dg_image_sniff(const uint8_t *d, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && memcmp(d, png_sig, 8) == 0) return DG_IMAGE_FORMAT_PNG;
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return DG_IMAGE_FORMAT_JPEG;
  if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
    return DG_IMAGE_FORMAT_WEBP;
  return DG_IMAGE_FORMAT_UNKNOWN;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IHDR must be the first chunk: signature(8) len(4) "IHDR" w(4) h(4). */
static dg_status png_probe(const uint8_t *d, size_t n, int *w, int *h, char *err, size_t errlen) {
  if (n < 33 || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
    dg__image_err(err, errlen, "image: corrupt PNG (no IHDR)");
    return DG_STATUS_ERR_FORMAT;
  }
  uint32_t pw = be32(d + 16), ph = be32(d + 20);
  if (pw == 0 || ph == 0 || pw > 0x7FFFFFFF || ph > 0x7FFFFFFF) {
    dg__image_err(err, errlen, "image: corrupt PNG (dimensions %ux%u)", pw, ph);
    return DG_STATUS_ERR_FORMAT;
  }
  *w = (int)pw;
  *h = (int)ph;
  return DG_STATUS_OK;
}

static dg_status webp_probe(const uint8_t *d, size_t n, int *w, int *h, int *alpha, char *err,
                            size_t errlen) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(d, n, &f) != VP8_STATUS_OK) {
    dg__image_err(err, errlen, "image: corrupt WebP");
    return DG_STATUS_ERR_FORMAT;
  }
  if (f.has_animation) {
    dg__image_err(err, errlen, "image: animated WebP is not supported");
    return DG_STATUS_ERR_FORMAT;
  }
  *w = f.width;
  *h = f.height;
  if (alpha) *alpha = f.has_alpha;
  return DG_STATUS_OK;
}

dg_status dg_image_probe(const uint8_t *data, size_t n, const dg_image_limits *lim,
                         dg_image_format *fmt, int *width, int *height, char *err, size_t errlen) {
  dg_image_limits def = dg_image_limits_default();
  if (!lim) lim = &def;
  if (err && errlen) err[0] = '\0';
  if (lim->max_bytes && n > lim->max_bytes) {
    dg__image_err(err, errlen, "image: %zu bytes is over the %zu byte limit", n, lim->max_bytes);
    return DG_STATUS_ERR_LIMIT;
  }
  dg_image_format f = data ? dg_image_sniff(data, n) : DG_IMAGE_FORMAT_UNKNOWN;
  int w = 0, h = 0;
  dg_status st;
  switch (f) {
    case DG_IMAGE_FORMAT_PNG: st = png_probe(data, n, &w, &h, err, errlen); break;
    case DG_IMAGE_FORMAT_JPEG: st = dg__jpeg_probe(data, n, &w, &h, err, errlen); break;
    case DG_IMAGE_FORMAT_WEBP: st = webp_probe(data, n, &w, &h, NULL, err, errlen); break;
    default:
      dg__image_err(err, errlen, "image: not a PNG, JPEG or WebP image");
      return DG_STATUS_ERR_FORMAT;
  }
  if (st != DG_STATUS_OK) return st;
  st = dg__image_check_dims(w, h, lim, err, errlen);
  if (st != DG_STATUS_OK) return st;
  if (fmt) *fmt = f;
  if (width) *width = w;
  if (height) *height = h;
  return DG_STATUS_OK;
}

/* ---- PNG decode (libpng's full API: no gamma or colour management, so the
 * 8-bit values are exactly the file's, as PIL reads them). */

typedef struct png_ctx {
  dg_image *img;
  png_bytep *rows;
  int done, oom;
  char msg[160];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(png);
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

/* Progressive ("push") reading: unlike png_read_image/png_read_end, libpng
 * stops inflating as soon as the last row is complete, so compressed data
 * past the image (a 20 MiB file can hold gigabytes of it) costs nothing. */
static void png_on_info(png_structp png, png_infop info) {
  png_ctx *c = png_get_progressive_ptr(png);
  png_uint_32 w, h;
  int depth, ctype, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  if (depth == 16) png_set_strip_16(png);
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  (void)png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  if ((ch != 3 && ch != 4) || png_get_rowbytes(png, info) != (size_t)w * (size_t)ch)
    png_error(png, "unexpected row layout");
  c->img = dg_image_new((int)w, (int)h, ch);
  c->rows = c->img ? malloc(sizeof(png_bytep) * h) : NULL;
  if (!c->rows) {
    c->oom = 1;
    png_error(png, "out of memory");
  }
  for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->img->pixels + (size_t)y * w * (size_t)ch;
}

static void png_on_row(png_structp png, png_bytep row, png_uint_32 y, int pass) {
  png_ctx *c = png_get_progressive_ptr(png);
  (void)pass;
  if (row && c->rows && y < (png_uint_32)c->img->height) png_progressive_combine_row(png, c->rows[y], row);
}

static void png_on_end(png_structp png, png_infop info) {
  png_ctx *c = png_get_progressive_ptr(png);
  (void)info;
  c->done = 1;
}

/* Everything that can longjmp happens here; all state lives in *c (owned by
 * the caller's frame), so nothing local is modified between setjmp and
 * longjmp, and there are no VLAs. */
static int png_decode_inner(png_structp png, png_infop info, png_ctx *c, const uint8_t *data,
                            size_t n, const dg_image_limits *lim) {
  if (setjmp(png_jmpbuf(png))) return c->oom ? -2 : -1;
  png_set_progressive_read_fn(png, c, png_on_info, png_on_row, png_on_end);
  png_set_user_limits(png, (png_uint_32)(lim->max_side > 0 ? lim->max_side : 0x7FFFFFFF),
                      (png_uint_32)(lim->max_side > 0 ? lim->max_side : 0x7FFFFFFF));
  png_set_chunk_cache_max(png, 128);
  png_set_chunk_malloc_max(png, (png_alloc_size_t)4 << 20);
  /* Metadata we never use is skipped unread (no zTXt/iTXt/iCCP inflation). */
  static const png_byte ignored[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored, 6);
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_WARN_DISCARD);
  png_process_data(png, info, (png_bytep)data, n);
  if (!c->done || !c->img) {
    snprintf(c->msg, sizeof c->msg, "truncated");
    return -1;
  }
  return 0;
}

/* Walk the chunk headers (bounds-checked) up to IEND: catches truncated
 * files without inflating anything. */
static int png_chunks_complete(const uint8_t *d, size_t n) {
  size_t pos = 8;
  while (pos <= n && n - pos >= 12) {
    uint32_t len = be32(d + pos);
    if (len > 0x7FFFFFFFu || (size_t)len > n - pos - 12) return 0;
    if (memcmp(d + pos + 4, "IEND", 4) == 0) return 1;
    pos += 12 + (size_t)len;
  }
  return 0;
}

static dg_status png_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                            dg_image **out, char *err, size_t errlen) {
  if (!png_chunks_complete(data, n)) {
    dg__image_err(err, errlen, "image: corrupt PNG (truncated)");
    return DG_STATUS_ERR_FORMAT;
  }
  png_ctx c;
  memset(&c, 0, sizeof c);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return DG_STATUS_ERR_NOMEM;
  }
  int r = png_decode_inner(png, info, &c, data, n, lim);
  png_destroy_read_struct(&png, &info, NULL);
  free(c.rows);
  if (r != 0) {
    dg_image_free(c.img);
    if (r == -2) return DG_STATUS_ERR_NOMEM;
    dg__image_err(err, errlen, "image: corrupt PNG (%s)", c.msg);
    return DG_STATUS_ERR_FORMAT;
  }
  *out = c.img;
  return DG_STATUS_OK;
}

/* ---- WebP */

static dg_status webp_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                             dg_image **out, char *err, size_t errlen) {
  int w, h, alpha;
  dg_status st = webp_probe(data, n, &w, &h, &alpha, err, errlen);
  if (st != DG_STATUS_OK) return st;
  st = dg__image_check_dims(w, h, lim, err, errlen);
  if (st != DG_STATUS_OK) return st;
  dg_image *img = dg_image_new(w, h, alpha ? 4 : 3);
  if (!img) return DG_STATUS_ERR_NOMEM;
  size_t stride = (size_t)w * (size_t)img->channels, size = stride * (size_t)h;
  uint8_t *r = alpha ? WebPDecodeRGBAInto(data, n, img->pixels, size, (int)stride)
                     : WebPDecodeRGBInto(data, n, img->pixels, size, (int)stride);
  if (!r) {
    dg_image_free(img);
    dg__image_err(err, errlen, "image: corrupt WebP");
    return DG_STATUS_ERR_FORMAT;
  }
  *out = img;
  return DG_STATUS_OK;
}

dg_status dg_image_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                          dg_image **out, char *err, size_t errlen) {
  *out = NULL;
  dg_image_limits def = dg_image_limits_default();
  if (!lim) lim = &def;
  dg_image_format f;
  int w, h;
  dg_status st = dg_image_probe(data, n, lim, &f, &w, &h, err, errlen);
  if (st != DG_STATUS_OK) return st;
  switch (f) {
    case DG_IMAGE_FORMAT_PNG: return png_decode(data, n, lim, out, err, errlen);
    case DG_IMAGE_FORMAT_JPEG: return dg__jpeg_decode(data, n, lim, out, err, errlen);
    default: return webp_decode(data, n, lim, out, err, errlen);
  }
}

/* ---- Encoders */

static dg_status png_encode(const dg_image *img, uint8_t **out, size_t *n) {
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = (png_uint_32)img->width;
  pi.height = (png_uint_32)img->height;
  pi.format = img->channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&pi, NULL, &size, 0, img->pixels, 0, NULL)) {
    png_image_free(&pi);
    return DG_STATUS_ERR_INTERNAL;
  }
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return DG_STATUS_ERR_NOMEM;
  if (!png_image_write_to_memory(&pi, buf, &size, 0, img->pixels, 0, NULL)) {
    png_image_free(&pi);
    free(buf);
    return DG_STATUS_ERR_INTERNAL;
  }
  *out = buf;
  *n = size;
  return DG_STATUS_OK;
}

static dg_status webp_encode(const dg_image *img, int quality, uint8_t **out, size_t *n) {
  WebPConfig cfg;
  WebPPicture pic;
  WebPMemoryWriter wr;
  if (!WebPConfigInit(&cfg) || !WebPPictureInit(&pic)) return DG_STATUS_ERR_INTERNAL;
  if (quality > 100) { /* lossless, keeping the colour under transparent pixels */
    cfg.lossless = 1;
    cfg.exact = 1;
    cfg.quality = 75;
  } else {
    cfg.quality = (float)quality;
  }
  pic.use_argb = cfg.lossless;
  pic.width = img->width;
  pic.height = img->height;
  int stride = img->width * img->channels;
  int ok = img->channels == 4 ? WebPPictureImportRGBA(&pic, img->pixels, stride)
                              : WebPPictureImportRGB(&pic, img->pixels, stride);
  if (!ok) {
    WebPPictureFree(&pic);
    return DG_STATUS_ERR_NOMEM;
  }
  WebPMemoryWriterInit(&wr);
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &wr;
  ok = WebPEncode(&cfg, &pic);
  WebPPictureFree(&pic);
  if (!ok) {
    WebPMemoryWriterClear(&wr);
    return pic.error_code == VP8_ENC_ERROR_OUT_OF_MEMORY ? DG_STATUS_ERR_NOMEM
                                                          : DG_STATUS_ERR_INTERNAL;
  }
  /* Hand back a malloc'd copy so callers can free() it. */
  uint8_t *buf = malloc(wr.size ? wr.size : 1);
  if (!buf) {
    WebPMemoryWriterClear(&wr);
    return DG_STATUS_ERR_NOMEM;
  }
  memcpy(buf, wr.mem, wr.size);
  *out = buf;
  *n = wr.size;
  WebPMemoryWriterClear(&wr);
  return DG_STATUS_OK;
}

dg_status dg_image_encode(const dg_image *img, dg_image_format fmt, int quality, uint8_t **out,
                          size_t *n) {
  *out = NULL;
  *n = 0;
  if (!img || !img->pixels || img->width <= 0 || img->height <= 0 ||
      (img->channels != 3 && img->channels != 4) || img->width > 16383 * 4 ||
      img->height > 16383 * 4)
    return DG_STATUS_ERR_INVALID;
  if (quality < 0) quality = 0;
  switch (fmt) {
    case DG_IMAGE_FORMAT_PNG: return png_encode(img, out, n);
    case DG_IMAGE_FORMAT_JPEG: return dg__jpeg_encode(img, quality > 100 ? 100 : quality, out, n);
    case DG_IMAGE_FORMAT_WEBP:
      if (img->width > 16383 || img->height > 16383) return DG_STATUS_ERR_LIMIT;
      return webp_encode(img, quality, out, n);
    default: return DG_STATUS_ERR_INVALID;
  }
}
