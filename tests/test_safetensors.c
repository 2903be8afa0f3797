/* safetensors reader/writer and the weights table: real fixture files (both
 * layouts), a writer round trip, and a table of malformed headers that must
 * each fail cleanly with the expected status and a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "weights/safetensors.h"
#include "weights/weights.h"

static float f32_at(const dg_tensor *t, int64_t i) {
  float v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

static int64_t numel(const dg_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

static void test_fixture_files(void) {
  char err[512] = "";
  dg_safetensors *st = NULL;
  dg_status rc = dg_safetensors_open(t_data("sd15-tiny/sd15-tiny.safetensors"), &st, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  if (rc != DG_STATUS_OK) return;
  CHECK(dg_safetensors_count(st) == 585);
  CHECK(dg_safetensors_metadata(st, "format") == NULL);
  const dg_tensor *t = dg_safetensors_at(st, 0);
  CHECK(t && strcmp(t->name, "cond_stage_model.transformer.text_model.embeddings.position_ids") == 0);
  CHECK(t && t->dtype == DG_DTYPE_I64 && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == 77);
  if (t) {
    int ok = 1;
    for (int64_t i = 0; i < 77; i++) {
      int64_t v;
      memcpy(&v, (const char *)t->data + 8 * i, 8);
      ok &= v == i;
    }
    CHECK(ok);
  }
  t = dg_safetensors_find(st, "model.diffusion_model.time_embed.2.weight");
  CHECK(t && t->dtype == DG_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 128);
  if (t) {
    CHECK(f32_at(t, 0) == -0x1.f7ded4p-5f);
    CHECK(f32_at(t, 128 * 128 - 1) == 0x1.3678a6p-5f);
  }
  CHECK(dg_safetensors_find(st, "model.diffusion_model.nope") == NULL);
  CHECK(dg_safetensors_find(st, "") == NULL);
  /* Every tensor is found by its own name, and points inside the file. */
  int all = 1;
  for (size_t i = 0; i < dg_safetensors_count(st); i++) {
    const dg_tensor *a = dg_safetensors_at(st, i);
    all &= dg_safetensors_find(st, a->name) == a;
  }
  CHECK(all);

  /* Weights table over the single-file layout with a prefix. */
  dg_weights *w = dg_weights_new();
  CHECK(w != NULL);
  rc = dg_weights_add(w, st, "cond_stage_model.transformer.", NULL, NULL, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  CHECK(dg_weights_count(w) == 37);
  const dg_tensor *pe = dg_weights_get(w, "text_model.embeddings.position_embedding.weight");
  CHECK(pe && pe->shape[0] == 77 && pe->shape[1] == 32);
  if (pe) CHECK(f32_at(pe, 0) == -0x1.87aa38p-6f);
  int64_t shp[2] = {77, 32}, bad[2] = {77, 33}, any[2] = {-1, 32};
  CHECK(dg_weights_need(w, "text_model.embeddings.position_embedding.weight", 2, shp, err, sizeof err) == pe);
  CHECK(dg_weights_need(w, "text_model.embeddings.position_embedding.weight", 2, any, err, sizeof err) == pe);
  err[0] = 0;
  CHECK(dg_weights_need(w, "text_model.embeddings.position_embedding.weight", 2, bad, err, sizeof err) == NULL);
  CHECK(strstr(err, "position_embedding.weight") != NULL && strstr(err, "33") != NULL);
  err[0] = 0;
  CHECK(dg_weights_need(w, "text_model.missing", 2, shp, err, sizeof err) == NULL);
  CHECK(strstr(err, "text_model.missing") != NULL);
  int64_t pshape[2] = {1, 77};
  err[0] = 0;
  CHECK(dg_weights_need(w, "text_model.embeddings.position_ids", 2, pshape, err, sizeof err) == NULL);
  CHECK(strstr(err, "I64") != NULL);
  /* Adding the same prefix again collides. */
  err[0] = 0;
  rc = dg_weights_add(w, st, "cond_stage_model.transformer.", NULL, NULL, err, sizeof err);
  CHECK(rc == DG_STATUS_ERR_FORMAT && strstr(err, "text_model.") != NULL);
  CHECK(dg_weights_count(w) == 37); /* the failed add left nothing behind */
  dg_weights_free(w);
  dg_safetensors_close(st);

  static const struct {
    const char *path;
    size_t n;
    const char *name;
    float first, last;
  } files[] = {
      {"sd15-tiny/diffusers/unet/diffusion_pytorch_model.safetensors", 304, "conv_in.weight",
       -0x1.6e1454p-8f, 0x1.4d6b08p-6f},
      {"sd15-tiny/diffusers/vae/diffusion_pytorch_model.safetensors", 244, "quant_conv.weight",
       0x1.42011p-8f, 0x1.bf1454p-7f},
      {"sd15-tiny/diffusers/text_encoder/model.safetensors", 37,
       "text_model.final_layer_norm.weight", 0x1.06f17ap+0f, 0x1.0397bep+0f},
  };
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    rc = dg_safetensors_open(t_data(files[f].path), &st, err, sizeof err);
    CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
    if (rc != DG_STATUS_OK) continue;
    CHECK_MSG(dg_safetensors_count(st) == files[f].n, "%s: %zu", files[f].path, dg_safetensors_count(st));
    const char *fmt = dg_safetensors_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0);
    t = dg_safetensors_find(st, files[f].name);
    CHECK(t != NULL);
    if (t) {
      CHECK(f32_at(t, 0) == files[f].first);
      CHECK(f32_at(t, numel(t) - 1) == files[f].last);
    }
    dg_safetensors_close(st);
  }
}

/* Rename callback: strip "text_model." and skip position_ids. */
static int rename_cb(const char *name, char *out, size_t n, void *ud) {
  (*(int *)ud)++;
  if (strstr(name, "position_ids")) return 0;
  const char *p = strncmp(name, "text_model.", 11) == 0 ? name + 11 : name;
  snprintf(out, n, "te.%s", p);
  return 1;
}

static void test_weights_rename(void) {
  char err[512] = "";
  dg_safetensors *st = NULL;
  dg_status rc = dg_safetensors_open(t_data("sd15-tiny/diffusers/text_encoder/model.safetensors"), &st,
                                     err, sizeof err);
  CHECK(rc == DG_STATUS_OK);
  if (rc) return;
  dg_weights *w = dg_weights_new();
  int calls = 0;
  rc = dg_weights_add(w, st, "", rename_cb, &calls, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  CHECK(calls == 37);
  CHECK(dg_weights_count(w) == 36);
  CHECK(dg_weights_get(w, "te.final_layer_norm.weight") == dg_safetensors_find(st, "text_model.final_layer_norm.weight"));
  CHECK(dg_weights_get(w, "text_model.final_layer_norm.weight") == NULL);
  CHECK(dg_weights_get(w, "te.embeddings.position_ids") == NULL);
  dg_weights_free(w);
  dg_safetensors_close(st);
}

/* Two files in one table, each under its own namespace. */
static int add_prefix_cb(const char *name, char *out, size_t n, void *ud) {
  snprintf(out, n, "%s%s", (const char *)ud, name);
  return 1;
}

static void test_weights_two_files(void) {
  char err[512] = "";
  dg_safetensors *u = NULL, *v = NULL;
  CHECK(dg_safetensors_open(t_data("sd15-tiny/diffusers/unet/diffusion_pytorch_model.safetensors"), &u, err,
                            sizeof err) == DG_STATUS_OK);
  CHECK(dg_safetensors_open(t_data("sd15-tiny/diffusers/vae/diffusion_pytorch_model.safetensors"), &v, err,
                            sizeof err) == DG_STATUS_OK);
  if (!u || !v) {
    dg_safetensors_close(u);
    dg_safetensors_close(v);
    return;
  }
  dg_weights *w = dg_weights_new();
  CHECK(dg_weights_add(w, u, "", add_prefix_cb, "unet.", err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_weights_add(w, v, "", add_prefix_cb, "vae.", err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_weights_count(w) == 304 + 244);
  CHECK(dg_weights_get(w, "unet.conv_in.weight") == dg_safetensors_find(u, "conv_in.weight"));
  CHECK(dg_weights_get(w, "vae.quant_conv.weight") == dg_safetensors_find(v, "quant_conv.weight"));
  CHECK(dg_weights_get(w, "conv_in.weight") == NULL);
  /* Only the tensors under a prefix: "decoder." of the VAE. */
  dg_weights *d = dg_weights_new();
  CHECK(dg_weights_add(d, v, "decoder.", NULL, NULL, err, sizeof err) == DG_STATUS_OK);
  size_t nd = 0;
  for (size_t i = 0; i < dg_safetensors_count(v); i++)
    nd += strncmp(dg_safetensors_at(v, i)->name, "decoder.", 8) == 0;
  CHECK(nd > 0 && dg_weights_count(d) == nd);
  CHECK(dg_weights_get(d, "conv_in.weight") == dg_safetensors_find(v, "decoder.conv_in.weight"));
  dg_weights_free(d);
  dg_weights_free(w);
  dg_weights_free(NULL);
  dg_safetensors_close(u);
  dg_safetensors_close(v);
}

static void test_roundtrip(void) {
  char path[] = "/tmp/dg_test_st_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  float a[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-30f};
  uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
  uint8_t u[5] = {1, 2, 3, 4, 255};
  int64_t l[2] = {INT64_MIN, 42};
  double dd[1] = {3.141592653589793};
  dg_tensor ta = {DG_DTYPE_F32, 2, {2, 3, 1, 1}, a, "layer.a"};
  dg_tensor th = {DG_DTYPE_F16, 1, {3, 1, 1, 1}, h, "layer.h"};
  dg_tensor tu = {DG_DTYPE_U8, 1, {5, 1, 1, 1}, u, "u8 \"quoted\" name"};
  dg_tensor tl = {DG_DTYPE_I64, 1, {2, 1, 1, 1}, l, "long"};
  dg_tensor td = {DG_DTYPE_F64, 0, {1, 1, 1, 1}, dd, "scalar"};
  dg_tensor te = {DG_DTYPE_F32, 1, {0, 1, 1, 1}, NULL, "empty"};
  const dg_tensor *list[] = {&tu, &th, &ta, &tl, &td, &te};
  char err[512] = "";
  dg_status rc = dg_safetensors_write(path, list, 6, "{\"format\":\"pt\",\"note\":\"hi\"}", err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  FILE *f = fopen(path, "rb");
  unsigned char len8[8] = {0};
  CHECK(f && fread(len8, 1, 8, f) == 8);
  if (f) fclose(f);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | len8[i];
  CHECK(hl % 8 == 0);

  dg_safetensors *st = NULL;
  rc = dg_safetensors_open(path, &st, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  if (rc == DG_STATUS_OK) {
    CHECK(dg_safetensors_count(st) == 6);
    CHECK(strcmp(dg_safetensors_metadata(st, "note"), "hi") == 0);
    CHECK(strcmp(dg_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(dg_safetensors_metadata(st, "none") == NULL);
    const dg_tensor *sc = dg_safetensors_find(st, "scalar");
    CHECK(sc && sc->ndim == 1 && sc->shape[0] == 1);
    for (int i = 0; i < 6; i++) {
      const dg_tensor *src = list[i], *r = dg_safetensors_find(st, src->name);
      CHECK_MSG(r != NULL, "%s", src->name);
      if (!r) continue;
      CHECK(r->dtype == src->dtype && r->ndim == (src->ndim ? src->ndim : 1)); /* scalars read back as [1] */
      size_t es = src->dtype == DG_DTYPE_F32 ? 4 : src->dtype == DG_DTYPE_F16 ? 2 : src->dtype == DG_DTYPE_U8 ? 1 : 8;
      int64_t ne = numel(src);
      for (int d = 0; d < src->ndim; d++) CHECK(r->shape[d] == src->shape[d]);
      if (ne) CHECK(memcmp(r->data, src->data, (size_t)ne * es) == 0);
      /* data aligned to element size within the file */
      CHECK(((uintptr_t)r->data) % es == 0);
    }
    dg_safetensors_close(st);
  }
  /* Writer argument errors. */
  dg_tensor dup = ta;
  const dg_tensor *dl[] = {&ta, &dup};
  CHECK(dg_safetensors_write(path, dl, 2, NULL, err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_safetensors_write(path, list, 1, "[1]", err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_safetensors_write(path, list, 1, "{\"a\":1}", err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_safetensors_write("/nonexistent-dir/x.safetensors", list, 1, NULL, err, sizeof err) == DG_STATUS_ERR_IO);

  /* Truncated copy of the valid file: header OK, data cut -> ERR_FORMAT. */
  f = fopen(path, "rb");
  unsigned char buf[4096];
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f) fclose(f);
  CHECK(n > 16);
  f = fopen(path, "wb");
  if (f) {
    fwrite(buf, 1, n - 3, f);
    fclose(f);
  }
  err[0] = 0;
  rc = dg_safetensors_open(path, &st, err, sizeof err);
  CHECK(rc == DG_STATUS_ERR_FORMAT && st == NULL);
  CHECK(strstr(err, "past the data area") != NULL);
  f = fopen(path, "wb");
  if (f) {
    fwrite(buf, 1, 5, f);
    fclose(f);
  }
  CHECK(dg_safetensors_open(path, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  f = fopen(path, "wb");
  if (f) fclose(f);
  CHECK(dg_safetensors_open(path, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  remove(path);
  err[0] = 0;
  CHECK(dg_safetensors_open(path, &st, err, sizeof err) == DG_STATUS_ERR_IO);
  CHECK(strstr(err, "cannot open") != NULL);
  CHECK(dg_safetensors_open("/", &st, err, sizeof err) == DG_STATUS_ERR_IO);
}

/* Malformed headers, parsed from memory: 8-byte length + header + data. */
static unsigned char *mk(const char *header, size_t data_len, size_t *size) {
  size_t hl = strlen(header);
  *size = 8 + hl + data_len;
  unsigned char *b = calloc(1, *size);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  return b;
}

static void test_malformed(void) {
  static const struct {
    const char *header;
    size_t data;
    dg_status want;
    const char *msg; /* substring of the error message */
  } cases[] = {
      {"{}", 0, DG_STATUS_OK, ""},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DG_STATUS_OK, ""},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[1,5]}}", 8, DG_STATUS_OK, ""},
      {"not json", 0, DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"[1,2]   ", 0, DG_STATUS_ERR_FORMAT, "not a JSON object"},
      {"\"str\"", 0, DG_STATUS_ERR_FORMAT, "JSON"},
      {"{\"a\":1}", 0, DG_STATUS_ERR_FORMAT, "'a' is not an object"},
      {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "lacks dtype"},
      {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "lacks shape"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, DG_STATUS_ERR_FORMAT, "lacks data_offsets"},
      {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "dtype is not a string"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "shape is not an array"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "shape[0]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "shape[0]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "shape[0]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
       DG_STATUS_ERR_FORMAT, "overflows"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807],\"data_offsets\":[0,4]}}", 4,
       DG_STATUS_ERR_FORMAT, "overflows"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
       DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, DG_STATUS_ERR_FORMAT, "do not hold 4 bytes"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 8, DG_STATUS_ERR_FORMAT, "do not hold"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 8, DG_STATUS_ERR_FORMAT, "past the data area"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,0]}}", 8,
       DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, DG_STATUS_ERR_FORMAT, "data_offsets"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8, DG_STATUS_ERR_FORMAT, "data_offsets"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 8, DG_STATUS_ERR_FORMAT, "data_offsets"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, DG_STATUS_ERR_FORMAT, "overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       8, DG_STATUS_ERR_FORMAT, "overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       8, DG_STATUS_OK, ""},
      {"{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, DG_STATUS_ERR_FORMAT, "unknown dtype"},
      {"{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 4, DG_STATUS_ERR_UNSUPPORTED, "dtype I8"},
      {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}", 4, DG_STATUS_ERR_UNSUPPORTED, "BOOL"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, DG_STATUS_ERR_FORMAT, "duplicate"},
      {"{\"big.w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
       DG_STATUS_ERR_UNSUPPORTED, "'big.w' has 5 dims"},
      {"{\"__metadata__\":{\"k\":1}}", 0, DG_STATUS_ERR_FORMAT, "not a string"},
      {"{\"__metadata__\":[]}", 0, DG_STATUS_ERR_FORMAT, "__metadata__ is not an object"},
      {"{\"a\xff\":{}}", 0, DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"{\"a\\u0000b\":{}}", 0, DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"{} {}", 0, DG_STATUS_ERR_FORMAT, "not valid JSON"},
      {"{", 0, DG_STATUS_ERR_FORMAT, "too short"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t size;
    unsigned char *b = mk(cases[i].header, cases[i].data, &size);
    char err[512] = "";
    dg_safetensors *st = (dg_safetensors *)&err; /* must be reset to NULL on failure */
    dg_status rc = dg_safetensors_parse(b, size, &st, err, sizeof err);
    CHECK_MSG(rc == cases[i].want, "case %zu (%s): got %s, want %s: %s", i, cases[i].header,
              dg_status_name(rc), dg_status_name(cases[i].want), err);
    if (rc == DG_STATUS_OK) {
      CHECK(st != NULL);
      for (size_t k = 0; k < dg_safetensors_count(st); k++) {
        const dg_tensor *t = dg_safetensors_at(st, k);
        CHECK((const unsigned char *)t->data >= b && (const unsigned char *)t->data <= b + size);
      }
      dg_safetensors_close(st);
    } else {
      CHECK(st == NULL);
      CHECK_MSG(strstr(err, cases[i].msg) != NULL, "case %zu: message '%s' lacks '%s'", i, err, cases[i].msg);
    }
    free(b);
  }

  /* Header length past the end, huge, and a file shorter than 8 bytes. */
  unsigned char raw[16] = {0};
  char err[512] = "";
  dg_safetensors *st = NULL;
  raw[0] = 9; /* N = 9 > 16 - 8 */
  CHECK(dg_safetensors_parse(raw, 16, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(strstr(err, "past the end") != NULL);
  memset(raw, 0xff, 8);
  CHECK(dg_safetensors_parse(raw, 16, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(strstr(err, "100 MiB") != NULL);
  memset(raw, 0, 8);
  raw[3] = 0x07; /* 112 MiB, also past the end */
  CHECK(dg_safetensors_parse(raw, 16, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_safetensors_parse(raw, 7, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_safetensors_parse(NULL, 0, &st, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_safetensors_parse(raw, 16, NULL, err, sizeof err) == DG_STATUS_ERR_INVALID);
  /* NULL err buffer is allowed. */
  CHECK(dg_safetensors_parse(raw, 7, &st, NULL, 0) == DG_STATUS_ERR_FORMAT);

  /* Unaligned data is usable: F32 at byte offset 1. */
  size_t size;
  unsigned char *b = mk("{\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}", 8, &size);
  float v = 2.5f;
  memcpy(b + size - 8 + 1, &v, 4);
  CHECK(dg_safetensors_parse(b, size, &st, err, sizeof err) == DG_STATUS_OK);
  if (st) {
    const dg_tensor *t = dg_safetensors_find(st, "u");
    CHECK(t && f32_at(t, 0) == 2.5f && t->ndim == 1);
    dg_safetensors_close(st);
  }
  free(b);
}

int main(void) {
  test_fixture_files();
  test_weights_rename();
  test_weights_two_files();
  test_roundtrip();
  test_malformed();
  T_DONE();
}
