/* JPEG codec on libjpeg(-turbo): header-first limits, setjmp error handling,
 * CMYK/YCCK converted to RGB, EXIF orientation applied. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image/image.h"
#include "image/image_internal.h"

enum { MAX_SCANS = 100, MAX_WARNINGS = 10000 }; /* real files: ~10 scans */

typedef struct jpeg_ctx {
  struct jpeg_error_mgr pub; /* first: libjpeg casts err to this */
  struct jpeg_progress_mgr progress;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  long warnings;
  dg_image *img;  /* decoded (stored orientation) */
  uint8_t *row;   /* CMYK scanline */
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
  jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, c->msg);
  longjmp(c->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
  jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
  /* A truncated file is an error (libjpeg would pad it with grey). */
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    snprintf(c->msg, sizeof c->msg, "truncated file");
    longjmp(c->jb, 1);
  }
  if (level < 0 && ++c->warnings > MAX_WARNINGS) {
    snprintf(c->msg, sizeof c->msg, "too many corrupt-data warnings");
    longjmp(c->jb, 1);
  }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

/* A progressive JPEG with thousands of tiny scans costs quadratic time. */
static void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > MAX_SCANS) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    snprintf(c->msg, sizeof c->msg, "more than %d scans", MAX_SCANS);
    longjmp(c->jb, 1);
  }
}

static void ctx_init(jpeg_ctx *c, struct jpeg_decompress_struct *d) {
  memset(c, 0, sizeof *c);
  d->err = jpeg_std_error(&c->pub);
  c->pub.error_exit = jpeg_on_error;
  c->pub.emit_message = jpeg_on_message;
  c->pub.output_message = jpeg_on_output;
}

/* All longjmp-able work; state only in *c and *d (caller's frame). */
static int probe_inner(struct jpeg_decompress_struct *d, jpeg_ctx *c, const uint8_t *data,
                       size_t n) {
  if (setjmp(c->jb)) return -1;
  jpeg_create_decompress(d);
  jpeg_mem_src(d, data, (unsigned long)n);
  jpeg_read_header(d, TRUE);
  return 0;
}

dg_status dg__jpeg_probe(const uint8_t *data, size_t n, int *w, int *h, char *err, size_t errlen) {
  struct jpeg_decompress_struct d;
  jpeg_ctx c;
  memset(&d, 0, sizeof d);
  ctx_init(&c, &d);
  int r = probe_inner(&d, &c, data, n);
  if (r == 0) {
    *w = (int)d.image_width;
    *h = (int)d.image_height;
  }
  jpeg_destroy_decompress(&d);
  if (r != 0) {
    dg__image_err(err, errlen, "image: corrupt JPEG (%s)", c.msg);
    return DG_STATUS_ERR_FORMAT;
  }
  return DG_STATUS_OK;
}

static int decode_inner(struct jpeg_decompress_struct *d, jpeg_ctx *c, const uint8_t *data,
                        size_t n, const dg_image_limits *lim, int *orientation) {
  if (setjmp(c->jb)) return -1;
  jpeg_create_decompress(d);
  c->progress.progress_monitor = jpeg_on_progress;
  d->progress = &c->progress;
  d->mem->max_memory_to_use = (long)512 << 20;
  jpeg_mem_src(d, data, (unsigned long)n);
  jpeg_save_markers(d, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(d, TRUE);
  if (dg__image_check_dims(d->image_width, d->image_height, lim, NULL, 0) != DG_STATUS_OK)
    return -3;
  for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1) {
      int o = dg__exif_orientation(m->data, m->data_length);
      if (o) {
        *orientation = o;
        break;
      }
    }
  }
  int cmyk = d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK;
  if (cmyk)
    d->out_color_space = JCS_CMYK;
  else if (d->num_components == 1 || d->num_components == 3)
    d->out_color_space = JCS_RGB;
  else {
    snprintf(c->msg, sizeof c->msg, "unsupported colour space (%d components)", d->num_components);
    return -1;
  }
  jpeg_start_decompress(d);
  c->img = dg_image_new((int)d->output_width, (int)d->output_height, 3);
  if (!c->img) return -2;
  if (cmyk) {
    c->row = malloc((size_t)d->output_width * 4);
    if (!c->row) return -2;
  }
  while (d->output_scanline < d->output_height) {
    uint8_t *dst = c->img->pixels + (size_t)d->output_scanline * d->output_width * 3;
    JSAMPROW rp = cmyk ? c->row : dst;
    if (jpeg_read_scanlines(d, &rp, 1) != 1) {
      snprintf(c->msg, sizeof c->msg, "no scanline");
      return -1;
    }
    if (cmyk) {
      /* As PIL: CMYK JPEGs are taken as stored inverted (Adobe's convention,
       * PIL's "CMYK;I" for every CMYK JPEG), then PIL's cmyk2rgb:
       * R = (255 - K) - C * (255 - K) / 255, rounded with its MULDIV255. */
      for (JDIMENSION x = 0; x < d->output_width; x++) {
        const uint8_t *p = c->row + 4 * x;
        unsigned nk = p[3]; /* 255 - K where K = 255 - stored */
        for (int b = 0; b < 3; b++) {
          unsigned ink = 255u - p[b];
          unsigned t = ink * nk + 128;
          dst[3 * x + b] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
      }
    }
  }
  jpeg_finish_decompress(d);
  return 0;
}

dg_status dg__jpeg_decode(const uint8_t *data, size_t n, const dg_image_limits *lim,
                          dg_image **out, char *err, size_t errlen) {
  struct jpeg_decompress_struct d;
  jpeg_ctx c;
  int orientation = 1;
  memset(&d, 0, sizeof d);
  ctx_init(&c, &d);
  int r = decode_inner(&d, &c, data, n, lim, &orientation);
  jpeg_destroy_decompress(&d);
  free(c.row);
  if (r != 0) {
    dg_image_free(c.img);
    if (r == -2) return DG_STATUS_ERR_NOMEM;
    if (r == -3) return dg__image_check_dims(d.image_width, d.image_height, lim, err, errlen);
    dg__image_err(err, errlen, "image: corrupt JPEG (%s)", c.msg);
    return DG_STATUS_ERR_FORMAT;
  }
  if (orientation != 1) {
    dg_image *o = dg__image_orient(c.img, orientation);
    dg_image_free(c.img);
    if (!o) return DG_STATUS_ERR_NOMEM;
    c.img = o;
  }
  *out = c.img;
  return DG_STATUS_OK;
}

/* ---- encode */

typedef struct jpeg_enc_ctx {
  struct jpeg_error_mgr pub;
  struct jpeg_destination_mgr dest;
  jmp_buf jb;
  unsigned char *buf; /* our own growable buffer (libjpeg's mem_dest frees on growth) */
  size_t cap, size;
  uint8_t *row;
} jpeg_enc_ctx;

static void dest_init(j_compress_ptr e) {
  jpeg_enc_ctx *c = (jpeg_enc_ctx *)e->err;
  c->dest.next_output_byte = c->buf;
  c->dest.free_in_buffer = c->cap;
}

static boolean dest_empty(j_compress_ptr e) {
  jpeg_enc_ctx *c = (jpeg_enc_ctx *)e->err;
  size_t ncap = c->cap * 2;
  unsigned char *nb = realloc(c->buf, ncap);
  if (!nb) ERREXIT1(e, JERR_OUT_OF_MEMORY, 10);
  c->buf = nb;
  c->dest.next_output_byte = nb + c->cap;
  c->dest.free_in_buffer = ncap - c->cap;
  c->cap = ncap;
  return TRUE;
}

static void dest_term(j_compress_ptr e) {
  jpeg_enc_ctx *c = (jpeg_enc_ctx *)e->err;
  c->size = c->cap - c->dest.free_in_buffer;
}

static void jpeg_enc_on_error(j_common_ptr cinfo) {
  jpeg_enc_ctx *c = (jpeg_enc_ctx *)cinfo->err;
  longjmp(c->jb, 1);
}

static int encode_inner(struct jpeg_compress_struct *e, jpeg_enc_ctx *c, const dg_image *img,
                        int quality) {
  if (setjmp(c->jb)) return -1;
  jpeg_create_compress(e);
  c->cap = 65536;
  c->buf = malloc(c->cap);
  if (!c->buf) return -2;
  c->dest.init_destination = dest_init;
  c->dest.empty_output_buffer = dest_empty;
  c->dest.term_destination = dest_term;
  e->dest = &c->dest;
  e->image_width = (JDIMENSION)img->width;
  e->image_height = (JDIMENSION)img->height;
  e->input_components = 3;
  e->in_color_space = JCS_RGB;
  jpeg_set_defaults(e);
  jpeg_set_quality(e, quality, TRUE);
  jpeg_start_compress(e, TRUE);
  if (img->channels == 4) {
    c->row = malloc((size_t)img->width * 3);
    if (!c->row) return -2;
  }
  while (e->next_scanline < e->image_height) {
    const uint8_t *src = img->pixels + (size_t)e->next_scanline * img->width * img->channels;
    if (img->channels == 4) { /* alpha dropped: JPEG has none */
      for (int x = 0; x < img->width; x++) memcpy(c->row + 3 * x, src + 4 * x, 3);
      src = c->row;
    }
    JSAMPROW rp = (JSAMPROW)src;
    jpeg_write_scanlines(e, &rp, 1);
  }
  jpeg_finish_compress(e);
  return 0;
}

dg_status dg__jpeg_encode(const dg_image *img, int quality, uint8_t **out, size_t *n) {
  struct jpeg_compress_struct e;
  jpeg_enc_ctx c;
  memset(&e, 0, sizeof e);
  memset(&c, 0, sizeof c);
  e.err = jpeg_std_error(&c.pub);
  c.pub.error_exit = jpeg_enc_on_error;
  c.pub.output_message = jpeg_on_output;
  int r = encode_inner(&e, &c, img, quality < 1 ? 1 : quality);
  jpeg_destroy_compress(&e);
  free(c.row);
  if (r != 0) {
    free(c.buf);
    return r == -2 ? DG_STATUS_ERR_NOMEM : DG_STATUS_ERR_INTERNAL;
  }
  *out = c.buf;
  *n = c.size;
  return DG_STATUS_OK;
}
