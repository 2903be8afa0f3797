/* Internal helpers shared by the files of src/image (not a public interface). */
#ifndef DG_IMAGE_IMAGE_INTERNAL_H
#define DG_IMAGE_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

/* snprintf into err when err is non-NULL. */
void dg__image_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Check header dimensions against the limits (message names the numbers). */
dg_status dg__image_check_dims(int64_t w, int64_t h, const dg_image_limits *lim, char *err,
                               size_t errlen);

/* JPEG (jpeg.c). */
dg_status dg__jpeg_probe(const uint8_t *data, size_t n, int *w, int *h, char *err, size_t errlen);
dg_status dg__jpeg_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                          dg_image **out, char *err, size_t errlen);
dg_status dg__jpeg_encode(const dg_image *img, int quality, uint8_t **out, size_t *n);

/* EXIF (exif.c).  Orientation 1..8 from the body of an APP1 segment (the
 * bytes after the length field), 0 when absent or malformed. */
int dg__exif_orientation(const uint8_t *app1, size_t n);
/* A new image with orientation o (1..8) applied: the stored pixels turned
 * into the displayed ones.  NULL on OOM. */
dg_image *dg__image_orient(const dg_image *src, int o);

/* Fetch an http(s) URL under `fl` (fetch.c).  `trusted` (tests only; NULL
 * in production) is one "ip:port" exempt from the address rules, so a test
 * server on loopback can check that redirects are still re-checked.  */
dg_status dg__image_fetch(const char *url, const dg_fetch_limits *fl, const char *trusted,
                          uint8_t **out, size_t *n, char *err, size_t errlen);
/* 1 if a numeric IPv4/IPv6 address may be fetched with allow_private=0. */
int dg__image_ip_is_public(const char *ip);

#endif
