/* dg_image allocation, format names, limits and channel conversion. */
#include "image/image.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

dg_image *dg_image_new(int width, int height, int channels) {
  if (width <= 0 || height <= 0 || (channels != 3 && channels != 4)) return NULL;
  size_t n = (size_t)width * (size_t)height;
  if (n / (size_t)width != (size_t)height || n > SIZE_MAX / 4) return NULL;
  dg_image *img = malloc(sizeof *img);
  if (!img) return NULL;
  img->pixels = calloc(n, (size_t)channels);
  if (!img->pixels) {
    free(img);
    return NULL;
  }
  img->width = width;
  img->height = height;
  img->channels = channels;
  return img;
}

void dg_image_free(dg_image *img) {
  if (!img) return;
  free(img->pixels);
  free(img);
}

dg_image_format dg_image_format_from_name(const char *name) {
  if (!name) return DG_IMAGE_FORMAT_UNKNOWN;
  if (strcasecmp(name, "png") == 0) return DG_IMAGE_FORMAT_PNG;
  if (strcasecmp(name, "jpg") == 0 || strcasecmp(name, "jpeg") == 0) return DG_IMAGE_FORMAT_JPEG;
  if (strcasecmp(name, "webp") == 0) return DG_IMAGE_FORMAT_WEBP;
  return DG_IMAGE_FORMAT_UNKNOWN;
}

const char *dg_image_format_mime(dg_image_format f) {
  switch (f) {
    case DG_IMAGE_FORMAT_PNG: return "image/png";
    case DG_IMAGE_FORMAT_JPEG: return "image/jpeg";
    case DG_IMAGE_FORMAT_WEBP: return "image/webp";
    default: return "application/octet-stream";
  }
}

const char *dg_image_format_ext(dg_image_format f) {
  switch (f) {
    case DG_IMAGE_FORMAT_PNG: return "png";
    case DG_IMAGE_FORMAT_JPEG: return "jpg";
    case DG_IMAGE_FORMAT_WEBP: return "webp";
    default: return "bin";
  }
}

dg_image_limits dg_image_limits_default(void) {
  dg_image_limits l;
  l.max_bytes = (size_t)20 << 20;
  l.max_pixels = (int64_t)40 * 1000 * 1000;
  l.max_side = 8192;
  return l;
}

dg_status dg_image_to_channels(const dg_image *src, int channels, dg_image **out) {
  *out = NULL;
  if (!src || (channels != 3 && channels != 4)) return DG_STATUS_ERR_INVALID;
  dg_image *d = dg_image_new(src->width, src->height, channels);
  if (!d) return DG_STATUS_ERR_NOMEM;
  size_t n = (size_t)src->width * (size_t)src->height;
  const uint8_t *s = src->pixels;
  uint8_t *p = d->pixels;
  if (channels == src->channels) {
    memcpy(p, s, n * (size_t)channels);
  } else if (channels == 3) { /* drop alpha */
    for (size_t i = 0; i < n; i++, s += 4, p += 3) {
      p[0] = s[0];
      p[1] = s[1];
      p[2] = s[2];
    }
  } else { /* add opaque alpha */
    for (size_t i = 0; i < n; i++, s += 3, p += 4) {
      p[0] = s[0];
      p[1] = s[1];
      p[2] = s[2];
      p[3] = 255;
    }
  }
  *out = d;
  return DG_STATUS_OK;
}
