/* Fuzz the image decoders (PNG/JPEG/WebP + EXIF) under tight limits, and
 * the image-parameter parser (data URI / base64) on the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dg_image_limits lim = dg_image_limits_default();
  lim.max_pixels = 1 << 20;
  lim.max_side = 4096;
  lim.max_bytes = 1 << 20;
  dg_image *img = NULL;
  char err[256];
  dg_status st = dg_image_decode(data, size, &lim, &img, err, sizeof err);
  if (st == DG_STATUS_OK) {
    /* exercise the rest of the module on whatever decoded */
    if (!img || img->width <= 0 || img->height <= 0) abort();
    dg_image *small = NULL;
    if (dg_image_resize(img, 1 + img->width % 7, 1 + img->height % 5, &small) != DG_STATUS_OK)
      abort();
    uint8_t *enc = NULL;
    size_t n = 0;
    if (dg_image_encode(small, DG_IMAGE_FORMAT_PNG, 0, &enc, &n) != DG_STATUS_OK) abort();
    free(enc);
    dg_image_free(small);
    dg_image_free(img);
  } else if (img) {
    abort();
  }
  /* as a parameter string (not a URL: no network in fuzzing) */
  if (size < 4096) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (strstr(s, "://") == NULL) {
      uint8_t *raw = NULL;
      size_t rn = 0;
      dg_image_load_param(s, NULL, &lim, &raw, &rn, &img, err, sizeof err);
      free(raw);
      dg_image_free(img);
    }
    free(s);
  }
  return 0;
}
