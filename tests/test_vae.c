/* AutoencoderKL against the reference goldens (tests/data/sd15-tiny):
 * encode (enc 64x64, enc_ns 64x96) moments/mean/logvar/std, decode (dec 8x8,
 * dec_ns 8x12) images, debug intermediates, from both checkpoint layouts,
 * reference and default kernels, 1 and 2 threads; plus config parsing and
 * detection, parameter enumeration and the LDM key map. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "models/vae.h"
#include "t.h"
#include "tensor/ops.h"
#include "weights/safetensors.h"

#define TOL 1e-4

static dg_safetensors *golden;

static const dg_tensor *gold(const char *name) {
  const dg_tensor *t = dg_safetensors_find(golden, name);
  CHECK_MSG(t != NULL, "golden %s missing", name);
  return t;
}

static double max_diff(const dg_tensor *a, const dg_tensor *b) {
  if (!a || !b || dg_tensor_numel(a) != dg_tensor_numel(b)) return 1e30;
  double m = 0;
  for (int64_t i = 0; i < dg_tensor_numel(a); i++) {
    double d = fabs((double)dg_load_f32(a->data, a->dtype, i) - dg_load_f32(b->data, b->dtype, i));
    if (d != d) return 1e30;
    if (d > m) m = d;
  }
  return m;
}

static double worst; /* largest difference seen, for the summary */

static void compare(const char *what, const dg_tensor *got, const char *golden_name) {
  const dg_tensor *g = gold(golden_name);
  double d = max_diff(got, g);
  if (d > worst && d < 1e29) worst = d;
  CHECK_MSG(d <= TOL, "%s: %s max |diff| %g", what, golden_name, d);
}

typedef struct probe_ctx {
  const char *prefix; /* "enc" / "dec" */
  const char *what;
  int seen;
} probe_ctx;

static void probe(void *ud, const char *name, const dg_tensor *t) {
  probe_ctx *p = ud;
  char gname[160];
  snprintf(gname, sizeof gname, "%s.debug.%s", p->prefix, name);
  if (!dg_safetensors_find(golden, gname)) return; /* not every module has a golden */
  p->seen++;
  compare(p->what, t, gname);
}

static dg_tensor *arena_like(dg_arena *a, const dg_tensor *g) {
  return dg_arena_tensor(a, DG_DTYPE_F32, g->ndim, g->shape);
}

static void run_encode(const dg_vae *v, dg_engine *e, dg_arena *a, const char *c, const char *what) {
  char n[64];
  snprintf(n, sizeof n, "%s.image", c);
  const dg_tensor *img = gold(n);
  snprintf(n, sizeof n, "%s.moments", c);
  const dg_tensor *gm = gold(n);
  if (!img || !gm) return;
  const dg_vae_config *cfg = dg_vae_get_config(v);
  CHECK(dg_vae_latent_size(cfg, img->shape[2]) == gm->shape[2]);
  CHECK(dg_vae_latent_size(cfg, img->shape[3]) == gm->shape[3]);
  dg_arena_mark m = dg_arena_get_mark(a);
  dg_tensor *mom = arena_like(a, gm);
  int64_t zs[4] = {gm->shape[0], gm->shape[1] / 2, gm->shape[2], gm->shape[3]};
  dg_tensor *mean = dg_arena_tensor(a, DG_DTYPE_F32, 4, zs);
  dg_tensor *logvar = dg_arena_tensor(a, DG_DTYPE_F32, 4, zs);
  dg_tensor *std = dg_arena_tensor(a, DG_DTYPE_F32, 4, zs);
  probe_ctx pc = {"enc", what, 0};
  dg_vae_hooks hooks = {probe, &pc};
  dg_status st = dg_vae_encode(v, e, a, img, mom, strcmp(c, "enc") == 0 ? &hooks : NULL);
  CHECK_MSG(st == DG_STATUS_OK, "%s: encode %s: %s", what, c, dg_strerror(st));
  if (st == DG_STATUS_OK) {
    if (strcmp(c, "enc") == 0) CHECK_MSG(pc.seen == 7, "%s: %d encoder probes", what, pc.seen);
    compare(what, mom, n);
    CHECK(dg_vae_moments_split(mom, mean, logvar, std) == DG_STATUS_OK);
    snprintf(n, sizeof n, "%s.mean", c);
    compare(what, mean, n);
    snprintf(n, sizeof n, "%s.logvar", c);
    compare(what, logvar, n);
    snprintf(n, sizeof n, "%s.std", c);
    compare(what, std, n);
    snprintf(n, sizeof n, "%s.mode", c);
    compare(what, mean, n);
  }
  dg_arena_reset(a, m);
}

static void run_decode(const dg_vae *v, dg_engine *e, dg_arena *a, const char *c, int batch,
                       const char *what) {
  char n[64];
  snprintf(n, sizeof n, "%s.latent", c);
  const dg_tensor *z = gold(n);
  snprintf(n, sizeof n, "%s.image", c);
  const dg_tensor *gi = gold(n);
  if (!z || !gi) return;
  dg_arena_mark m = dg_arena_get_mark(a);
  /* batch copies of the latent: every image of the batch must match */
  int64_t zs[4] = {batch, z->shape[1], z->shape[2], z->shape[3]};
  int64_t is[4] = {batch, gi->shape[1], gi->shape[2], gi->shape[3]};
  dg_tensor *zb = dg_arena_tensor(a, DG_DTYPE_F32, 4, zs);
  dg_tensor *img = dg_arena_tensor(a, DG_DTYPE_F32, 4, is);
  size_t zbytes = dg_tensor_nbytes(z);
  for (int b = 0; b < batch; b++) memcpy((char *)zb->data + b * zbytes, z->data, zbytes);
  probe_ctx pc = {"dec", what, 0};
  dg_vae_hooks hooks = {probe, &pc};
  const int probing = strcmp(c, "dec") == 0 && batch == 1;
  dg_status st = dg_vae_decode(v, e, a, zb, img, probing ? &hooks : NULL);
  CHECK_MSG(st == DG_STATUS_OK, "%s: decode %s: %s", what, c, dg_strerror(st));
  if (st == DG_STATUS_OK) {
    if (probing) CHECK_MSG(pc.seen == 5, "%s: %d decoder probes", what, pc.seen);
    for (int b = 0; b < batch; b++) {
      dg_tensor one = dg_tensor_narrow0(img, b, 1);
      compare(what, &one, n);
    }
  }
  dg_arena_reset(a, m);
}


/* Tiled decode: one tile = the plain decode; several tiles = diffusers'
 * tiled_decode, replayed here literally (decode every tile, blend with the
 * tile above then the one to the left, crop to the row limit, concatenate). */
static float *ref_tiles[16][16];
static int64_t ref_h[16][16], ref_w[16][16];

static void test_tiled(const dg_vae *v, dg_engine *e, dg_arena *a) {
  const dg_tensor *z = gold("dec_ns.latent"); /* (1, 4, 8, 12) */
  const dg_tensor *gi = gold("dec_ns.image");
  if (!z || !gi) return;
  dg_arena_mark m = dg_arena_get_mark(a);
  dg_tensor *img = arena_like(a, gi), *plain = arena_like(a, gi);
  CHECK(dg_vae_decode(v, e, a, z, plain, NULL) == DG_STATUS_OK);
  CHECK(dg_vae_decode_tiled(v, e, a, z, img, 12) == DG_STATUS_OK);
  CHECK(max_diff(img, plain) == 0.0);
  CHECK(dg_vae_decode_tiled(v, e, a, z, img, 6) == DG_STATUS_ERR_INVALID);

  const int T = 4, stride = 3, f = 8, blend = 8, limit = 24, C = 3;
  const int64_t h = z->shape[2], w = z->shape[3], H = h * f, W = w * f;
  CHECK(dg_vae_decode_tiled(v, e, a, z, img, T) == DG_STATUS_OK);
  int ny = 0, nx = 0;
  for (int64_t i = 0; i < h; i += stride, ny++) {
    nx = 0;
    for (int64_t j = 0; j < w; j += stride, nx++) {
      int64_t th = i + T <= h ? T : h - i, tw = j + T <= w ? T : w - j;
      int64_t zs[4] = {1, 4, th, tw}, is[4] = {1, C, th * f, tw * f};
      dg_tensor *zt = dg_arena_tensor(a, DG_DTYPE_F32, 4, zs);
      for (int c = 0; c < 4; c++)
        for (int64_t y = 0; y < th; y++)
          for (int64_t x = 0; x < tw; x++)
            ((float *)zt->data)[(c * th + y) * tw + x] = ((const float *)z->data)[(c * h + i + y) * w + j + x];
      dg_tensor *it = dg_arena_tensor(a, DG_DTYPE_F32, 4, is);
      CHECK(dg_vae_decode(v, e, a, zt, it, NULL) == DG_STATUS_OK);
      ref_tiles[ny][nx] = it->data;
      ref_h[ny][nx] = th * f;
      ref_w[ny][nx] = tw * f;
    }
  }
  int64_t oy = 0;
  double d = 0;
  for (int i = 0; i < ny; i++) {
    int64_t ox = 0, rh = 0;
    for (int j = 0; j < nx; j++) {
      float *b = ref_tiles[i][j];
      int64_t bh = ref_h[i][j], bw = ref_w[i][j];
      if (i > 0) { /* blend_v(rows[i-1][j], tile) */
        float *t = ref_tiles[i - 1][j];
        int64_t th = ref_h[i - 1][j], ext = blend < th ? blend : th;
        if (bh < ext) ext = bh;
        for (int64_t y = 0; y < ext; y++)
          for (int c = 0; c < C; c++)
            for (int64_t x = 0; x < bw; x++)
              b[(c * bh + y) * bw + x] = t[(c * th + th - ext + y) * bw + x] * (float)(1.0 - (double)y / ext) +
                                         b[(c * bh + y) * bw + x] * (float)((double)y / ext);
      }
      if (j > 0) { /* blend_h(row[j-1], tile) */
        float *t = ref_tiles[i][j - 1];
        int64_t tw = ref_w[i][j - 1], ext = blend < tw ? blend : tw;
        if (bw < ext) ext = bw;
        for (int64_t x = 0; x < ext; x++)
          for (int c = 0; c < C; c++)
            for (int64_t y = 0; y < bh; y++)
              b[(c * bh + y) * bw + x] = t[(c * bh + y) * tw + tw - ext + x] * (float)(1.0 - (double)x / ext) +
                                         b[(c * bh + y) * bw + x] * (float)((double)x / ext);
      }
      int64_t ch = bh < limit ? bh : limit, cw = bw < limit ? bw : limit;
      for (int c = 0; c < C; c++)
        for (int64_t y = 0; y < ch; y++)
          for (int64_t x = 0; x < cw; x++) {
            double g = ((const float *)img->data)[(c * H + oy + y) * W + ox + x];
            double r = b[(c * bh + y) * bw + x];
            if (fabs(g - r) > d) d = fabs(g - r);
          }
      ox += cw;
      rh = ch;
    }
    CHECK(ox == W);
    oy += rh;
  }
  CHECK(oy == H);
  CHECK_MSG(d == 0.0, "tiled decode differs from the literal replay by %g", d);
  /* and stays an image of the same content: near the plain decode away from seams */
  CHECK_MSG(max_diff(img, plain) < 1e29, "tiled decode produced NaN");
  dg_arena_reset(a, m);
}

/* ---- loading both layouts ------------------------------------------------- */

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

typedef struct loaded {
  dg_safetensors *file;
  dg_weights *w;
  dg_vae_config cfg;
} loaded;

static int load_layout(int single, loaded *L) {
  char err[256] = "";
  memset(L, 0, sizeof *L);
  const char *path = single ? t_data("sd15-tiny/sd15-tiny.safetensors")
                            : t_data("sd15-tiny/diffusers/vae/diffusion_pytorch_model.safetensors");
  dg_status st = dg_safetensors_open(path, &L->file, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "open %s: %s", path, err);
  if (st != DG_STATUS_OK) return 0;
  L->w = dg_weights_new();
  int levels = 4;
  st = single ? dg_weights_add(L->w, L->file, "first_stage_model.", dg_vae_ldm_key_map, &levels, err,
                               sizeof err)
              : dg_weights_add(L->w, L->file, "", NULL, NULL, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "weights_add: %s", err);
  CHECK(dg_weights_count(L->w) == 244);
  /* config: detected from the weights for the single file, config.json for diffusers;
   * both must equal the tiny preset */
  dg_vae_config tiny = dg_vae_config_tiny();
  if (single) {
    st = dg_vae_config_detect(L->w, &L->cfg, err, sizeof err);
    CHECK_MSG(st == DG_STATUS_OK, "detect: %s", err);
  } else {
    char *js = slurp(t_data("sd15-tiny/diffusers/vae/config.json"));
    CHECK(js != NULL);
    st = dg_vae_config_from_json(js ? js : "", &L->cfg, err, sizeof err);
    CHECK_MSG(st == DG_STATUS_OK, "config.json: %s", err);
    free(js);
  }
  CHECK(memcmp(&L->cfg, &tiny, sizeof tiny) == 0);
  return st == DG_STATUS_OK;
}

static void unload(loaded *L) {
  dg_weights_free(L->w);
  dg_safetensors_close(L->file);
}

/* ---- enumeration / key map ------------------------------------------------ */

typedef struct enum_ctx {
  const dg_weights *w;
  int n, bad;
} enum_ctx;

static int enum_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  enum_ctx *c = ud;
  c->n++;
  const dg_tensor *t = dg_weights_get(c->w, name);
  int ok = t && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
  if (!ok) {
    c->bad++;
    fprintf(stderr, "enumerate: %s not in the file with that shape\n", name);
  }
  return 0;
}

static int stop_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  (void)name, (void)ndim, (void)shape;
  return ++*(int *)ud == 3 ? 7 : 0;
}

static void test_names(const loaded *diff, const loaded *single) {
  enum_ctx c = {diff->w, 0, 0};
  CHECK(dg_vae_enumerate(&diff->cfg, enum_cb, &c) == 0);
  CHECK(c.n == 244);
  CHECK(c.bad == 0);
  int k = 0;
  CHECK(dg_vae_enumerate(&diff->cfg, stop_cb, &k) == 7 && k == 3);

  /* Every LDM tensor maps onto the diffusers tensor with the same values
   * (the [C,C,1,1] attention weights onto [C,C]), and back. */
  int levels = 4, same = 0;
  for (size_t i = 0; i < dg_safetensors_count(single->file); i++) {
    const dg_tensor *t = dg_safetensors_at(single->file, i);
    if (strncmp(t->name, "first_stage_model.", 18) != 0) continue;
    char dn[192], back[192];
    int ok = dg_vae_ldm_key_map(t->name + 18, dn, sizeof dn, &levels);
    CHECK_MSG(ok, "no diffusers name for %s", t->name);
    if (!ok) continue;
    const dg_tensor *d = dg_weights_get(diff->w, dn);
    CHECK_MSG(d && max_diff(t, d) == 0.0, "%s -> %s differs", t->name, dn);
    CHECK(dg_vae_diffusers_to_ldm(dn, back, sizeof back, &levels) && strcmp(back, t->name + 18) == 0);
    same++;
  }
  CHECK(same == 244);
  char out[64];
  CHECK(dg_vae_ldm_key_map("model.diffusion_model.x.weight", out, sizeof out, &levels) == 0);
  CHECK(dg_vae_ldm_key_map("decoder.up.9.block.0.conv1.weight", out, sizeof out, &levels) == 0);
  CHECK(dg_vae_ldm_key_map("decoder.up.3.block.0.nin_shortcut.weight", out, sizeof out, &levels) &&
        strcmp(out, "decoder.up_blocks.0.resnets.0.conv_shortcut.weight") == 0);
  char tiny[8];
  CHECK(dg_vae_ldm_key_map("encoder.conv_in.weight", tiny, sizeof tiny, &levels) == 0);
}

static void test_errors(const loaded *L, dg_engine *e, dg_arena *a) {
  char err[256];
  /* missing tensor: decoder-only weights cannot make an encoder */
  dg_weights *w = dg_weights_new();
  CHECK(dg_weights_add(w, L->file, "decoder.", NULL, NULL, err, sizeof err) == DG_STATUS_OK);
  dg_vae *v = NULL;
  CHECK(dg_vae_new(&L->cfg, w, 1, 0, &v, err, sizeof err) == DG_STATUS_ERR_FORMAT && v == NULL);
  CHECK(strstr(err, "missing") != NULL);
  dg_weights_free(w);
  /* wrong config: channel mismatch is a message, not a crash */
  dg_vae_config bad = L->cfg;
  bad.block_out_channels[3] = 96;
  CHECK(dg_vae_new(&bad, L->w, 1, 1, &v, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  bad.block_out_channels[3] = 33;
  CHECK(dg_vae_config_check(&bad, err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_vae_config_from_json("{\"block_out_channels\": [32, \"x\"]}", &bad, err, sizeof err) ==
        DG_STATUS_ERR_FORMAT);
  CHECK(dg_vae_config_from_json("not json", &bad, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_vae_config_from_json("{\"down_block_types\": [\"CrossAttnDownBlock2D\"]}", &bad, err,
                                sizeof err) == DG_STATUS_ERR_UNSUPPORTED);
  /* bad shapes */
  CHECK(dg_vae_new(&L->cfg, L->w, 1, 1, &v, err, sizeof err) == DG_STATUS_OK);
  int64_t s1[4] = {1, 3, 1, 8}, s2[4] = {1, 8, 1, 1}, s3[4] = {1, 4, 2, 2}, s4[4] = {1, 3, 15, 16};
  dg_tensor *img = dg_arena_tensor(a, DG_DTYPE_F32, 4, s1);
  dg_tensor *mom = dg_arena_tensor(a, DG_DTYPE_F32, 4, s2);
  dg_tensor *z = dg_arena_tensor(a, DG_DTYPE_F32, 4, s3);
  dg_tensor *out = dg_arena_tensor(a, DG_DTYPE_F32, 4, s4);
  memset(img->data, 0, dg_tensor_nbytes(img));
  memset(z->data, 0, dg_tensor_nbytes(z));
  CHECK(dg_vae_encode(v, e, a, img, mom, NULL) == DG_STATUS_ERR_SHAPE); /* 1 px high */
  CHECK(dg_vae_decode(v, e, a, z, out, NULL) == DG_STATUS_ERR_SHAPE);   /* wrong out size */
  CHECK(dg_vae_decode(v, e, a, z, z, NULL) == DG_STATUS_ERR_SHAPE);
  dg_vae_free(v);
  /* decoder-only model refuses to encode */
  CHECK(dg_vae_new(&L->cfg, L->w, 0, 1, &v, err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_vae_encode(v, e, a, img, mom, NULL) == DG_STATUS_ERR_UNSUPPORTED);
  dg_vae_free(v);
}

int main(void) {
  char err[256];
  dg_status st = dg_safetensors_open(t_data("sd15-tiny/goldens/vae.safetensors"), &golden, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "golden: %s", err);
  if (st != DG_STATUS_OK) T_DONE();

  /* sizes follow diffusers' rounding */
  dg_vae_config sd = dg_vae_config_sd15();
  CHECK(dg_vae_factor(&sd) == 8);
  CHECK(dg_vae_latent_size(&sd, 512) == 64 && dg_vae_latent_size(&sd, 96) == 12);
  CHECK(dg_vae_latent_size(&sd, 65) == 8 && dg_vae_latent_size(&sd, 71) == 8);
  CHECK(dg_vae_latent_size(&sd, 1) == 0);

  loaded layouts[2];
  int ok0 = load_layout(0, &layouts[0]);
  int ok1 = load_layout(1, &layouts[1]);
  if (!ok0 || !ok1) T_DONE();
  test_names(&layouts[0], &layouts[1]);

  dg_arena *arena = dg_arena_new(1 << 20);
  struct {
    dg_isa isa;
    int threads;
  } engines[] = {{DG_ISA_REF, 2}, {DG_ISA_AUTO, 1}, {DG_ISA_AUTO, 2}};
  for (size_t ei = 0; ei < sizeof engines / sizeof engines[0]; ei++) {
    dg_engine_params ep = dg_engine_params_default();
    ep.isa = engines[ei].isa;
    ep.n_threads = engines[ei].threads;
    dg_engine *e = NULL;
    st = dg_engine_new(&ep, &e);
    CHECK_MSG(st == DG_STATUS_OK, "engine: %s", dg_strerror(st));
    if (st != DG_STATUS_OK) continue;
    /* The reference kernels are slow (naive convolutions): one layout is
     * enough for them, the layouts hold the same weights. */
    for (int li = 0; li < (engines[ei].isa == DG_ISA_REF ? 1 : 2); li++) {
      char what[96];
      snprintf(what, sizeof what, "%s layout, %s, %d thread(s)", li ? "single-file" : "diffusers",
               dg_isa_name(dg_engine_isa(e)), engines[ei].threads);
      dg_vae *v = NULL;
      st = dg_vae_new(&layouts[li].cfg, layouts[li].w, 1, 1, &v, err, sizeof err);
      CHECK_MSG(st == DG_STATUS_OK, "%s: vae_new: %s", what, err);
      if (st != DG_STATUS_OK) continue;
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      /* Under the sanitizers the naive reference convolutions take minutes:
       * there they run one decode only (everything else runs on the default
       * kernels). */
      const int slow = engines[ei].isa == DG_ISA_REF && getenv("DG_SANITIZE") != NULL;
      if (!slow) {
        run_encode(v, e, arena, "enc", what);
        run_encode(v, e, arena, "enc_ns", what);
      }
      run_decode(v, e, arena, "dec", 1, what);
      if (!slow) {
        run_decode(v, e, arena, "dec_ns", 1, what);
        if (li == 0) run_decode(v, e, arena, "dec", 2, what);
      }
      clock_gettime(CLOCK_MONOTONIC, &t1);
      printf("%s: %.2f s\n", what, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
      dg_vae_free(v);
    }
    if (ei == 0) test_errors(&layouts[1], e, arena);
    if (engines[ei].isa != DG_ISA_REF) {
      dg_vae *v = NULL;
      if (dg_vae_new(&layouts[0].cfg, layouts[0].w, 0, 1, &v, err, sizeof err) == DG_STATUS_OK)
        test_tiled(v, e, arena);
      dg_vae_free(v);
    }
    dg_engine_free(e);
  }
  printf("vae: largest |difference| from the goldens: %.3g\n", worst);
  dg_arena_free(arena);
  unload(&layouts[0]);
  unload(&layouts[1]);
  dg_safetensors_close(golden);
  T_DONE();
}
