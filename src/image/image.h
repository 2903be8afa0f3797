/* 8-bit images, codecs (PNG/JPEG/WebP), resizing, and resolution of the
 * image parameters clients send (http(s) URL, data: URI, bare base64).
 * Everything here treats its input as hostile: hard limits on bytes, pixels
 * and time; failures are a status plus a message for the client. */
#ifndef DG_IMAGE_IMAGE_H
#define DG_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct dg_image {
  int width, height;
  int channels;     /* 3 (RGB) or 4 (RGBA) */
  uint8_t *pixels;  /* height * width * channels bytes, row-major, owned */
} dg_image;

dg_image *dg_image_new(int width, int height, int channels); /* zeroed; NULL on OOM */
void dg_image_free(dg_image *img);

typedef enum dg_image_format {
  DG_IMAGE_FORMAT_PNG,
  DG_IMAGE_FORMAT_JPEG,
  DG_IMAGE_FORMAT_WEBP,
  DG_IMAGE_FORMAT_UNKNOWN
} dg_image_format;

/* "png" / "jpg" / "jpeg" / "webp" -> format; UNKNOWN otherwise. */
dg_image_format dg_image_format_from_name(const char *name);
const char *dg_image_format_mime(dg_image_format f); /* "image/png", ... */
const char *dg_image_format_ext(dg_image_format f);  /* "png", "jpg", "webp" */

typedef struct dg_image_limits {
  size_t max_bytes;    /* encoded size */
  int64_t max_pixels;  /* width * height, checked from the header before decoding */
  int max_side;        /* largest width or height */
} dg_image_limits;
dg_image_limits dg_image_limits_default(void); /* 20 MiB, 40 Mpx, 8192 */

/* Decode PNG/JPEG/WebP (sniffed from the bytes) to RGB, or RGBA when the
 * source has alpha.  JPEG EXIF orientation is applied.  Errors: ERR_FORMAT
 * (not an image / corrupt), ERR_LIMIT (too large), with a message in err. */
dg_status dg_image_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                          dg_image **out, char *err, size_t errlen);

/* Encode; quality 0..100 for JPEG/WebP (ignored for PNG).  *out is malloc'd. */
dg_status dg_image_encode(const dg_image *img, dg_image_format fmt, int quality,
                          uint8_t **out, size_t *n);

/* Resize with a Lanczos-3 filter computed exactly as PIL's Image.resize
 * (Image.LANCZOS), which the reference pipelines use.  New image in *out. */
dg_status dg_image_resize(const dg_image *src, int width, int height, dg_image **out);
/* Drop or add the alpha channel (alpha added as 255). */
dg_status dg_image_to_channels(const dg_image *src, int channels, dg_image **out);

/* Limits for fetching http(s) URLs. */
typedef struct dg_fetch_limits {
  size_t max_bytes;     /* abort past this many bytes (default 20 MiB) */
  long timeout_ms;      /* whole transfer (default 15000) */
  long connect_timeout_ms;
  int max_redirects;    /* default 3; every hop re-checked against the address rules */
  int allow_private;    /* 0: refuse loopback, private, link-local, CGNAT, multicast,
                           unspecified and IPv6 ULA/link-local/mapped addresses */
} dg_fetch_limits;
dg_fetch_limits dg_fetch_limits_default(void);

/* Resolve an image parameter value: "http(s)://..." (fetched under `fl`),
 * "data:image/...;base64,...", or bare base64.  On success *raw / *raw_n hold
 * the encoded bytes (malloc'd) and *img the decoded image (either may be NULL
 * if not wanted).  Errors: ERR_FORMAT / ERR_LIMIT / ERR_NETWORK with a message
 * for the client naming what was wrong. */
dg_status dg_image_load_param(const char *value, const dg_fetch_limits *fl,
                              const dg_image_limits *il, uint8_t **raw, size_t *raw_n,
                              dg_image **img, char *err, size_t errlen);

/* ---- Additions beyond the pinned interface ---- */

/* Format from the magic bytes (PNG signature, FF D8 FF, RIFF....WEBP). */
dg_image_format dg_image_sniff(const uint8_t *data, size_t n);
/* Sniff and read only the header: format and dimensions, checked against
 * `lim` (NULL: defaults) without decoding the pixels.  Any out pointer may be
 * NULL.  Same errors as dg_image_decode. */
dg_status dg_image_probe(const uint8_t *data, size_t n, const dg_image_limits *lim,
                         dg_image_format *fmt, int *width, int *height, char *err, size_t errlen);
/* dg_image_encode: a WebP quality above 100 selects lossless WebP. */
/* dg_image_resize reproduces Pillow up to 12.x (the horizontal pass always
 * first; the algorithm of Pillow 4.3 .. 12.x, e.g. Debian 12's 9.4).  Pillow
 * 13 runs the vertical pass first when it removes more than twice as many
 * rows as the horizontal pass removes columns, which changes the rounding of
 * those resizes; pillow_major >= 13 reproduces that, < 13 is dg_image_resize. */
dg_status dg_image_resize_pillow(const dg_image *src, int width, int height, int pillow_major,
                                 dg_image **out);

#endif
