/* A small bounds-checked EXIF reader (only IFD0's Orientation tag) and the
 * eight orientation transforms. */
#include <string.h>

#include "image/image.h"
#include "image/image_internal.h"

static unsigned rd16(const uint8_t *p, int le) {
  return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p, int le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int dg__exif_orientation(const uint8_t *app1, size_t n) {
  /* "Exif\0\0" then a TIFF header: byte order, 42, offset of IFD0. */
  if (!app1 || n < 6 + 8 || memcmp(app1, "Exif\0\0", 6) != 0) return 0;
  const uint8_t *t = app1 + 6;
  size_t tn = n - 6;
  int le;
  if (t[0] == 'I' && t[1] == 'I')
    le = 1;
  else if (t[0] == 'M' && t[1] == 'M')
    le = 0;
  else
    return 0;
  if (rd16(t + 2, le) != 42) return 0;
  uint32_t ifd = rd32(t + 4, le);
  if (ifd < 8 || ifd > tn || tn - ifd < 2) return 0;
  unsigned count = rd16(t + ifd, le);
  size_t pos = (size_t)ifd + 2;
  for (unsigned i = 0; i < count; i++, pos += 12) {
    if (pos > tn || tn - pos < 12) return 0;
    const uint8_t *e = t + pos;
    unsigned tag = rd16(e, le), type = rd16(e + 2, le);
    uint32_t cnt = rd32(e + 4, le);
    if (tag != 0x0112) continue;
    unsigned v;
    if (type == 3 && cnt >= 1) /* SHORT, stored in the value field */
      v = rd16(e + 8, le);
    else if (type == 4 && cnt >= 1) /* LONG (non-standard but seen) */
      v = (unsigned)rd32(e + 8, le);
    else
      return 0;
    return v >= 1 && v <= 8 ? (int)v : 0;
  }
  return 0;
}

dg_image *dg__image_orient(const dg_image *src, int o) {
  int w = src->width, h = src->height, ch = src->channels;
  int swap = o >= 5 && o <= 8;
  dg_image *d = dg_image_new(swap ? h : w, swap ? w : h, ch);
  if (!d) return NULL;
  int ow = d->width, oh = d->height;
  for (int y = 0; y < oh; y++) {
    for (int x = 0; x < ow; x++) {
      int sx, sy; /* the stored pixel shown at (x, y) */
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;             /* mirror horizontal */
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;     /* rotate 180 */
        case 4: sx = x; sy = h - 1 - y; break;             /* mirror vertical */
        case 5: sx = y; sy = x; break;                     /* transpose */
        case 6: sx = y; sy = h - 1 - x; break;             /* rotate 90 CW */
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;     /* transverse */
        case 8: sx = w - 1 - y; sy = x; break;             /* rotate 90 CCW */
        default: sx = x; sy = y; break;
      }
      memcpy(d->pixels + ((size_t)y * ow + x) * ch, src->pixels + ((size_t)sy * w + sx) * ch,
             (size_t)ch);
    }
  }
  return d;
}
