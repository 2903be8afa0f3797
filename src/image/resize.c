/* Lanczos-3 resize computed exactly as Pillow's Image.resize(size,
 * Image.LANCZOS): a separable two-pass convolution (horizontal first, only
 * over the source rows the vertical pass needs; Pillow 13 may run the
 * vertical pass first, see resize()), filter support scaled by the
 * downscale factor, weights normalised to sum 1 in double precision and then
 * quantised to 22-bit fixed point, accumulation in 32-bit integers starting
 * from one half, results clipped to 0..255.  RGBA is resized premultiplied
 * ("RGBa") and un-premultiplied afterwards, as Pillow does. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

enum { PRECISION_BITS = 32 - 8 - 2 };

static double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return sin(x) / x;
}

static double lanczos3(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3.0);
  return 0.0;
}

/* Per output position: the first source index, the tap count and ksize
 * fixed-point weights.  Returns ksize, 0 on OOM/overflow. */
typedef struct coeffs {
  int ksize;
  int *bounds; /* (out_size, 2): xmin, count */
  int32_t *k;  /* (out_size, ksize) */
} coeffs;

static int precompute(int in_size, int out_size, coeffs *c) {
  double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 3.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  if (out_size > INT_MAX / ksize) return 0;
  double *kk = malloc(sizeof(double) * (size_t)ksize);
  c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
  c->k = calloc((size_t)out_size * (size_t)ksize, sizeof(int32_t));
  if (!kk || !c->bounds || !c->k) {
    free(kk);
    return 0;
  }
  double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; x++) {
      double w = lanczos3((x + xmin - center + 0.5) * ss);
      kk[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; x++)
      if (ww != 0.0) kk[x] /= ww;
    int32_t *k = c->k + (size_t)xx * ksize;
    for (int x = 0; x < xmax; x++)
      k[x] = kk[x] < 0 ? (int32_t)(-0.5 + kk[x] * (1 << PRECISION_BITS))
                       : (int32_t)(0.5 + kk[x] * (1 << PRECISION_BITS));
    c->bounds[2 * xx] = xmin;
    c->bounds[2 * xx + 1] = xmax;
  }
  free(kk);
  c->ksize = ksize;
  return ksize;
}

static uint8_t clip8(int32_t v) {
  if (v >= (1 << (PRECISION_BITS + 8))) return 255;
  if (v <= 0) return 0;
  return (uint8_t)(v >> PRECISION_BITS);
}

/* out (rows, out_w, ch) <- in rows [row0, row0+rows) of (in_h, in_w, ch) */
static void horizontal(const uint8_t *in, int in_w, int row0, int rows, int ch, uint8_t *out,
                       int out_w, const coeffs *c) {
  for (int y = 0; y < rows; y++) {
    const uint8_t *src = in + (size_t)(y + row0) * in_w * ch;
    uint8_t *dst = out + (size_t)y * out_w * ch;
    for (int xx = 0; xx < out_w; xx++) {
      int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
      const int32_t *k = c->k + (size_t)xx * c->ksize;
      for (int b = 0; b < ch; b++) {
        int32_t ss = 1 << (PRECISION_BITS - 1);
        for (int x = 0; x < n; x++) ss += (int32_t)src[(size_t)(x + xmin) * ch + b] * k[x];
        dst[(size_t)xx * ch + b] = clip8(ss);
      }
    }
  }
}

/* out (out_h, w, ch) <- in (?, w, ch); bounds relative to in's first row */
static void vertical(const uint8_t *in, int w, int ch, uint8_t *out, int out_h, const coeffs *c,
                     int shift) {
  size_t stride = (size_t)w * ch;
  for (int yy = 0; yy < out_h; yy++) {
    int ymin = c->bounds[2 * yy] - shift, n = c->bounds[2 * yy + 1];
    const int32_t *k = c->k + (size_t)yy * c->ksize;
    uint8_t *dst = out + (size_t)yy * stride;
    for (size_t i = 0; i < stride; i++) {
      int32_t ss = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < n; y++) ss += (int32_t)in[(size_t)(y + ymin) * stride + i] * k[y];
      dst[i] = clip8(ss);
    }
  }
}

/* Pillow's RGBA <-> RGBa conversions (Convert.c). */
static void premultiply(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++, p += 4) {
    unsigned a = p[3];
    for (int b = 0; b < 3; b++) {
      unsigned t = p[b] * a + 128;
      p[b] = (uint8_t)(((t >> 8) + t) >> 8);
    }
  }
}

static void unpremultiply(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++, p += 4) {
    unsigned a = p[3];
    if (a == 255 || a == 0) continue;
    for (int b = 0; b < 3; b++) {
      unsigned v = 255u * p[b] / a;
      p[b] = (uint8_t)(v > 255 ? 255 : v);
    }
  }
}

static dg_status resize(const dg_image *src, int width, int height, int pillow13, dg_image **out) {
  *out = NULL;
  if (!src || width <= 0 || height <= 0 || (src->channels != 3 && src->channels != 4))
    return DG_STATUS_ERR_INVALID;
  int ch = src->channels, iw = src->width, ih = src->height;
  dg_image *dst = dg_image_new(width, height, ch);
  if (!dst) return DG_STATUS_ERR_NOMEM;
  if (width == iw && height == ih) { /* Pillow returns a copy */
    memcpy(dst->pixels, src->pixels, (size_t)iw * ih * ch);
    *out = dst;
    return DG_STATUS_OK;
  }
  coeffs ch_ = {0, NULL, NULL}, cv = {0, NULL, NULL};
  uint8_t *pre = NULL, *tmp = NULL;
  dg_status st = DG_STATUS_ERR_NOMEM;
  if (!precompute(iw, width, &ch_) || !precompute(ih, height, &cv)) goto done;
  const uint8_t *in = src->pixels;
  if (ch == 4) {
    pre = malloc((size_t)iw * ih * 4);
    if (!pre) goto done;
    memcpy(pre, src->pixels, (size_t)iw * ih * 4);
    premultiply(pre, (size_t)iw * ih);
    in = pre;
  }
  int need_h = width != iw, need_v = height != ih;
  int first = cv.bounds[0], last = cv.bounds[2 * height - 2] + cv.bounds[2 * height - 1];
  /* Pillow >= 13 runs the vertical pass first when it shrinks the rows by
   * more than twice what the horizontal pass removes from the columns
   * (ImagingResampleInner's horizontal_first); earlier Pillow always went
   * horizontal first.  The order changes rounding, so follow it exactly. */
  int vertical_first =
      pillow13 && need_h && need_v && ih - height > 0 && ih - height > 2 * (iw - width);
  if (vertical_first) {
    tmp = malloc((size_t)iw * height * ch); /* (height, iw, ch) */
    if (!tmp) goto done;
    vertical(in, iw, ch, tmp, height, &cv, 0);
    horizontal(tmp, iw, 0, height, ch, dst->pixels, width, &ch_);
  } else if (need_h && need_v) {
    tmp = malloc((size_t)width * (last - first) * ch); /* (last-first, width, ch) */
    if (!tmp) goto done;
    horizontal(in, iw, first, last - first, ch, tmp, width, &ch_);
    vertical(tmp, width, ch, dst->pixels, height, &cv, first);
  } else if (need_h) {
    horizontal(in, iw, 0, ih, ch, dst->pixels, width, &ch_);
  } else {
    vertical(in, iw, ch, dst->pixels, height, &cv, 0);
  }
  if (ch == 4) unpremultiply(dst->pixels, (size_t)width * height);
  st = DG_STATUS_OK;
done:
  free(ch_.bounds);
  free(ch_.k);
  free(cv.bounds);
  free(cv.k);
  free(pre);
  free(tmp);
  if (st != DG_STATUS_OK) {
    dg_image_free(dst);
    return st;
  }
  *out = dst;
  return DG_STATUS_OK;
}

dg_status dg_image_resize(const dg_image *src, int width, int height, dg_image **out) {
  return resize(src, width, height, 0, out);
}

dg_status dg_image_resize_pillow(const dg_image *src, int width, int height, int pillow_major,
                                 dg_image **out) {
  return resize(src, width, height, pillow_major >= 13, out);
}
