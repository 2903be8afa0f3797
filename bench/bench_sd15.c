/* Benchmark: sd1.5-img2img end to end (the issue #3 figures), on a model
 * from disk (e.g. a full-size random-weight one from `daguerre gen-model`).
 *
 *   bench_sd15 MODEL [--size 512] [--steps 20] [--strength 0.75] [--guidance 7.5]
 *              [--scheduler DDIM] [--precision f32|bf16|both] [--threads N]
 *              [--seed N] [--image FILE] [--tokenizer DIR] [--save PREFIX]
 *              [--quick] [--no-stages]
 *
 * MODEL is a models directory (with sd1.5-img2img/ inside, as `daguerre
 * serve --models-dir` takes), a diffusers folder (model_index.json), or a
 * single .safetensors checkpoint (tokenizer from --tokenizer, default
 * <dir of the file>/tokenizer).
 *
 * For each precision, in a child process of its own (so that the peak RSS
 * is that precision's alone): open the model; time the text encoding
 * (tokenizer + CLIP on the [negative, positive] batch of 2) and the VAE
 * encode of the input separately with the model APIs; then one whole
 * dg_sd15_img2img_generate (samples 1, CFG batch 2), timing each UNet CFG
 * step from the progress callback (steps 2.. are averaged: step 1 also pays
 * the first touch of the UNet weights) and the VAE decode (last callback ->
 * return).  The peak RSS is the child's VmHWM (/proc/self/status) and
 * ru_maxrss.  With both precisions, the max |f32 - bf16| of the 8-bit
 * images is printed.  Each stage is also given in process CPU seconds (all
 * threads): on a machine shared with other jobs the wall times are inflated,
 * while CPU-s / threads estimates the wall time on an idle machine.
 *
 * --quick: 4 steps (3 UNet steps at strength 0.75).  --no-stages: skip the
 * separate text/VAE-encode timings.  The input image is a fixed synthetic
 * pattern unless --image is given (resized like the pipeline does). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "models/sd15.h"
#include "pipelines/sd15_img2img.h"
#include "tensor/tensor.h"

#define MAX_STEPS 1000

typedef struct opts {
  const char *model, *tokenizer, *image_path, *scheduler, *save;
  int size, steps, threads, stages;
  double strength, guidance;
  uint64_t seed;
  int prec[2], n_prec;
} opts;

typedef struct result {
  int ok;
  char err[512];
  double load_s, text_s, vae_enc_s, step1_s, step_mean_s, step_min_s, step_max_s, decode_s,
      total_s;
  /* process CPU seconds (all threads): about the wall time on an idle machine x threads */
  double text_cpu, vae_enc_cpu, step_mean_cpu, decode_cpu, total_cpu;
  int n_steps;
  double hwm_mb, maxrss_mb, rss_after_load_mb;
  int width, height;
} result;

typedef struct progress_rec {
  double t[MAX_STEPS + 1], c[MAX_STEPS + 1];
  int n;
} progress_rec;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "VmHWM:" or "VmRSS:" of /proc/self/status in MB, -1 if unavailable. */
static double proc_status_mb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double mb = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0) {
      mb = strtod(line + kl, NULL) / 1024.0; /* kB */
      break;
    }
  fclose(f);
  return mb;
}

static void loadavg(char *out, size_t n) {
  FILE *f = fopen("/proc/loadavg", "r");
  out[0] = '\0';
  if (!f) return;
  if (fgets(out, (int)n, f)) {
    char *p = strchr(out, '\n');
    if (p) *p = '\0';
  }
  fclose(f);
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static dg_status open_model(const opts *o, dg_sd15 **m, char *err, size_t errlen) {
  return dg_sd15_open_path(o->model, o->tokenizer, m, err, errlen);
}

/* A fixed input: smooth colour gradients with a few discs (some structure for
 * the VAE, identical on every run). */
static dg_image *synthetic_image(int W, int H) {
  dg_image *im = dg_image_new(W, H, 3);
  if (!im) return NULL;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      double u = (double)x / W, v = (double)y / H;
      double r = 0.5 + 0.5 * sin(6.0 * u + 1.0), g = 0.3 + 0.6 * v, b = 0.5 + 0.4 * cos(9.0 * u * v);
      for (int k = 0; k < 3; k++) {
        double cx = 0.25 + 0.25 * k, cy = 0.3 + 0.2 * k, rad = 0.12 + 0.03 * k;
        if ((u - cx) * (u - cx) + (v - cy) * (v - cy) < rad * rad) {
          r = k == 0 ? 0.9 : 0.1;
          g = k == 1 ? 0.8 : 0.2;
          b = k == 2 ? 0.9 : 0.15;
        }
      }
      uint8_t *px = im->pixels + ((size_t)y * (size_t)W + (size_t)x) * 3;
      px[0] = (uint8_t)lrint(255.0 * r);
      px[1] = (uint8_t)lrint(255.0 * g);
      px[2] = (uint8_t)lrint(255.0 * b);
    }
  return im;
}

static dg_image *load_image(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 20, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    uint8_t *nb = realloc(buf, cap * 2);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  fclose(f);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  dg_image *im = NULL;
  dg_status st = dg_image_decode(buf, n, NULL, &im, err, errlen);
  free(buf);
  return st == DG_STATUS_OK ? im : NULL;
}

static void on_progress(void *ud, int step, int total) {
  progress_rec *pr = ud;
  (void)total;
  if (step >= 1 && step <= MAX_STEPS) {
    pr->t[step] = now();
    pr->c[step] = cpu_now();
    pr->n = step;
  }
}

/* Text encoding alone: tokenize [negative, positive], CLIP on the batch of 2. */
static dg_status time_text(dg_sd15 *m, dg_engine *e, const char *prompt, const char *neg,
                           double *secs, char *err, size_t errlen) {
  const dg_tokenizer *tok = dg_sd15_tokenizer(m);
  dg_clip_text *te = dg_sd15_text_encoder(m);
  if (!tok || !te) return DG_STATUS_ERR_INVALID;
  dg_arena *a = dg_arena_new((size_t)16 << 20);
  if (!a) return DG_STATUS_ERR_NOMEM;
  dg_status st = DG_STATUS_ERR_NOMEM;
  int64_t C = dg_clip_text_get_config(te)->hidden_size;
  int64_t ids_shape[2] = {2, DG_TOKENIZER_CONTEXT};
  int64_t hid_shape[3] = {2, DG_TOKENIZER_CONTEXT, C};
  double t0 = now();
  dg_tensor *ids = dg_arena_tensor(a, DG_DTYPE_I64, 2, ids_shape);    // (2, 77)
  dg_tensor *hidden = dg_arena_tensor(a, DG_DTYPE_F32, 3, hid_shape); // (2, 77, C)
  if (ids && hidden) {
    int64_t *id = ids->data;
    st = dg_tokenizer_encode(tok, neg, id);
    if (st == DG_STATUS_OK) st = dg_tokenizer_encode(tok, prompt, id + DG_TOKENIZER_CONTEXT);
    if (st == DG_STATUS_OK) {
      dg_clip_text_run run = dg_clip_text_run_default();
      run.hidden = hidden;
      st = dg_clip_text_forward(te, e, a, ids, &run, err, errlen);
    }
  }
  *secs = now() - t0;
  dg_arena_free(a);
  return st;
}

/* VAE encode alone of the (already sized) input. */
static dg_status time_vae_encode(dg_sd15 *m, dg_engine *e, const dg_image *im, double *secs) {
  const dg_vae *vae = dg_sd15_vae(m);
  if (!vae) return DG_STATUS_ERR_INVALID;
  const dg_vae_config *vc = dg_vae_get_config(vae);
  int64_t f = dg_vae_factor(vc), H = im->height, W = im->width;
  dg_arena *a = dg_arena_new((size_t)64 << 20);
  if (!a) return DG_STATUS_ERR_NOMEM;
  int64_t xs[4] = {1, 3, H, W};
  int64_t ms[4] = {1, 2 * (int64_t)vc->latent_channels, H / f, W / f};
  dg_status st = DG_STATUS_ERR_NOMEM;
  double t0 = now();
  dg_tensor *x = dg_arena_tensor(a, DG_DTYPE_F32, 4, xs);       // (1, 3, H, W)
  dg_tensor *moments = dg_arena_tensor(a, DG_DTYPE_F32, 4, ms); // (1, 2Z, H/f, W/f)
  if (x && moments) {
    float *px = x->data;
    size_t plane = (size_t)H * (size_t)W;
    for (size_t p = 0; p < plane; p++)
      for (int c = 0; c < 3; c++) px[(size_t)c * plane + p] = 2.0f * (float)im->pixels[p * 3 + (size_t)c] / 255.0f - 1.0f;
    st = dg_vae_encode(vae, e, a, x, moments, NULL);
  }
  *secs = now() - t0;
  dg_arena_free(a);
  return st;
}

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static const char *PROMPT = "a watercolor painting of a lighthouse on a cliff at sunset, detailed";
static const char *NEGATIVE = "blurry, low quality";

/* One precision, in the current (child) process.  Fills r; *img gets the output. */
static void run_one(const opts *o, dg_precision prec, const dg_image *input, result *r,
                    dg_image **img) {
  memset(r, 0, sizeof *r);
  *img = NULL;
  dg_sd15 *m = NULL;
  dg_engine *e = NULL;
  double t0 = now();
  dg_status st = open_model(o, &m, r->err, sizeof r->err);
  r->load_s = now() - t0;
  if (st != DG_STATUS_OK) {
    if (!r->err[0]) snprintf(r->err, sizeof r->err, "open: %s", dg_strerror(st));
    return;
  }
  r->rss_after_load_mb = proc_status_mb("VmRSS:");
  dg_engine_params ep = dg_engine_params_default();
  ep.n_threads = o->threads;
  ep.precision = prec;
  if ((st = dg_engine_new(&ep, &e)) != DG_STATUS_OK) {
    snprintf(r->err, sizeof r->err, "engine: %s", dg_strerror(st));
    goto done;
  }
  dg_image *sized = NULL;
  if (input->width != o->size || input->height != o->size) {
    if ((st = dg_image_resize(input, o->size, o->size, &sized)) != DG_STATUS_OK) {
      snprintf(r->err, sizeof r->err, "resize: %s", dg_strerror(st));
      goto done;
    }
  }
  const dg_image *in = sized ? sized : input;
  if (o->stages) {
    double c0 = cpu_now();
    st = time_text(m, e, PROMPT, NEGATIVE, &r->text_s, r->err, sizeof r->err);
    double c1 = cpu_now();
    if (st == DG_STATUS_OK) st = time_vae_encode(m, e, in, &r->vae_enc_s);
    r->text_cpu = c1 - c0;
    r->vae_enc_cpu = cpu_now() - c1;
    if (st != DG_STATUS_OK) {
      if (!r->err[0]) snprintf(r->err, sizeof r->err, "stages: %s", dg_strerror(st));
      dg_image_free(sized);
      goto done;
    }
  }
  progress_rec *pr = calloc(1, sizeof *pr);
  if (!pr) {
    dg_image_free(sized);
    goto done;
  }
  dg_sd15_img2img_request req = {0};
  req.image = in;
  req.prompt = PROMPT;
  req.negative_prompt = NEGATIVE;
  req.samples = 1;
  req.scheduler = o->scheduler;
  req.steps = o->steps;
  req.guidance_scale = o->guidance;
  req.strength = o->strength;
  req.seed = o->seed;
  req.width = o->size;
  req.height = o->size;
  req.progress = on_progress;
  req.ud = pr;
  dg_image *outs[1] = {NULL};
  double g0 = now(), gc0 = cpu_now();
  st = dg_sd15_img2img_generate(m, e, &req, outs, r->err, sizeof r->err);
  double g1 = now(), gc1 = cpu_now();
  dg_image_free(sized);
  if (st != DG_STATUS_OK) {
    free(pr);
    goto done;
  }
  r->total_s = g1 - g0;
  r->total_cpu = gc1 - gc0;
  r->n_steps = pr->n;
  if (pr->n >= 1) {
    r->decode_s = g1 - pr->t[pr->n];
    r->decode_cpu = gc1 - pr->c[pr->n];
    r->step_min_s = 1e30;
    for (int i = 2; i <= pr->n; i++) {
      double d = pr->t[i] - pr->t[i - 1];
      r->step_mean_s += d / (pr->n - 1);
      r->step_mean_cpu += (pr->c[i] - pr->c[i - 1]) / (pr->n - 1);
      if (d < r->step_min_s) r->step_min_s = d;
      if (d > r->step_max_s) r->step_max_s = d;
    }
    /* step 1 with the text encoding and VAE encode inside the pipeline taken out */
    r->step1_s = pr->t[1] - g0 - (o->stages ? r->text_s + r->vae_enc_s : 0);
    if (pr->n == 1) r->step_mean_s = r->step_min_s = r->step_max_s = r->step1_s;
  }
  free(pr);
  r->width = outs[0]->width;
  r->height = outs[0]->height;
  *img = outs[0];
  r->ok = 1;
done:
  r->hwm_mb = proc_status_mb("VmHWM:");
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  r->maxrss_mb = (double)ru.ru_maxrss / 1024.0;
  dg_engine_free(e);
  dg_sd15_close(m);
}

/* Fork, run one precision in the child, read its result and image back. */
static int run_forked(const opts *o, dg_precision prec, const dg_image *input, result *r,
                      dg_image **img) {
  int fds[2];
  *img = NULL;
  memset(r, 0, sizeof *r);
  if (pipe(fds)) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    result cr;
    dg_image *ci = NULL;
    run_one(o, prec, input, &cr, &ci);
    int rc = write_all(fds[1], &cr, sizeof cr);
    if (!rc && cr.ok) rc = write_all(fds[1], ci->pixels, (size_t)cr.width * (size_t)cr.height * 3);
    dg_image_free(ci);
    close(fds[1]);
    _exit(rc ? 1 : 0);
  }
  close(fds[1]);
  int rc = read_all(fds[0], r, sizeof *r);
  if (!rc && r->ok) {
    *img = dg_image_new(r->width, r->height, 3);
    rc = *img ? read_all(fds[0], (*img)->pixels, (size_t)r->width * (size_t)r->height * 3) : -1;
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (!r->err[0])
      snprintf(r->err, sizeof r->err, "child failed (%s %d)",
               WIFSIGNALED(status) ? "signal" : "exit",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    r->ok = 0;
    rc = -1;
  }
  return rc;
}

static int save_png(const dg_image *im, const char *prefix, const char *tag) {
  uint8_t *buf = NULL;
  size_t n = 0;
  if (dg_image_encode(im, DG_IMAGE_FORMAT_PNG, 95, &buf, &n) != DG_STATUS_OK) return -1;
  char path[4200];
  snprintf(path, sizeof path, "%s-%s.png", prefix, tag);
  FILE *f = fopen(path, "wb");
  int rc = f && fwrite(buf, 1, n, f) == n ? 0 : -1;
  if (f && fclose(f)) rc = -1;
  free(buf);
  if (!rc) printf("wrote %s\n", path);
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_sd15 MODEL [--size 512] [--steps 20] [--strength 0.75] [--guidance 7.5]\n"
          "                  [--scheduler DDIM] [--precision f32|bf16|both] [--threads N]\n"
          "                  [--seed N] [--image FILE] [--tokenizer DIR] [--save PREFIX]\n"
          "                  [--quick] [--no-stages]\n"
          "MODEL: a models dir (with sd1.5-img2img/), a diffusers folder or a .safetensors file.\n");
}

int main(int argc, char **argv) {
  opts o = {0};
  o.size = 512;
  o.steps = 20;
  o.strength = 0.75;
  o.guidance = 7.5;
  o.scheduler = "DDIM";
  o.seed = 42;
  o.stages = 1;
  o.prec[0] = DG_PRECISION_F32;
  o.prec[1] = DG_PRECISION_BF16;
  o.n_prec = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quick")) {
      o.steps = 4;
    } else if (!strcmp(a, "--no-stages")) {
      o.stages = 0;
    } else if (a[0] == '-' && !v) {
      usage(stderr);
      return 2;
    } else if (!strcmp(a, "--size")) {
      o.size = atoi(v), i++;
    } else if (!strcmp(a, "--steps")) {
      o.steps = atoi(v), i++;
    } else if (!strcmp(a, "--strength")) {
      o.strength = atof(v), i++;
    } else if (!strcmp(a, "--guidance")) {
      o.guidance = atof(v), i++;
    } else if (!strcmp(a, "--scheduler")) {
      o.scheduler = v, i++;
    } else if (!strcmp(a, "--threads")) {
      o.threads = atoi(v), i++;
    } else if (!strcmp(a, "--seed")) {
      o.seed = strtoull(v, NULL, 10), i++;
    } else if (!strcmp(a, "--image")) {
      o.image_path = v, i++;
    } else if (!strcmp(a, "--tokenizer")) {
      o.tokenizer = v, i++;
    } else if (!strcmp(a, "--save")) {
      o.save = v, i++;
    } else if (!strcmp(a, "--precision")) {
      i++;
      if (!strcmp(v, "f32")) o.n_prec = 1;
      else if (!strcmp(v, "bf16")) o.prec[0] = DG_PRECISION_BF16, o.n_prec = 1;
      else if (!strcmp(v, "both")) o.n_prec = 2;
      else {
        usage(stderr);
        return 2;
      }
    } else if (a[0] == '-' || o.model) {
      fprintf(stderr, "bench_sd15: unexpected argument %s\n", a);
      usage(stderr);
      return 2;
    } else {
      o.model = a;
    }
  }
  if (!o.model || o.size < 8 || o.size % 8 || o.steps < 1 || o.steps > MAX_STEPS) {
    usage(stderr);
    return 2;
  }
  char err[512] = "";
  dg_image *input = o.image_path ? load_image(o.image_path, err, sizeof err) : synthetic_image(o.size, o.size);
  if (!input) {
    fprintf(stderr, "bench_sd15: input image: %s\n", err[0] ? err : "out of memory");
    return 1;
  }
  char la0[128], la1[128];
  loadavg(la0, sizeof la0);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  printf("sd1.5-img2img end to end: %s\n", o.model);
  printf("%dx%d, strength %g, %d steps (%d UNet steps), CFG %g (UNet batch 2), %s, seed %llu, "
         "threads %d (of %ld CPUs)\n",
         o.size, o.size, o.strength, o.steps, (int)(o.steps * o.strength) < o.steps ? (int)(o.steps * o.strength) : o.steps,
         o.guidance, o.scheduler, (unsigned long long)o.seed, o.threads ? o.threads : (int)ncpu, ncpu);
  printf("load average at start: %s\n", la0);
  fflush(stdout);

  result r[2];
  dg_image *img[2] = {NULL, NULL};
  int failed = 0;
  for (int k = 0; k < o.n_prec; k++) {
    const char *name = o.prec[k] == DG_PRECISION_BF16 ? "bf16" : "f32";
    if (run_forked(&o, (dg_precision)o.prec[k], input, &r[k], &img[k]) || !r[k].ok) {
      fprintf(stderr, "bench_sd15: %s run failed: %s\n", name, r[k].err);
      failed = 1;
      continue;
    }
    printf("  %s done: open %.2f s, text %.3f s, VAE encode %.2f s, UNet step 1 %.2f s, steps 2.. mean %.2f s "
           "(min %.2f, max %.2f), VAE decode %.2f s, total %.2f s, peak RSS %.0f MB; CPU-s: step %.2f, "
           "decode %.2f, total %.2f\n",
           name, r[k].load_s, r[k].text_s, r[k].vae_enc_s, r[k].step1_s, r[k].step_mean_s, r[k].step_min_s,
           r[k].step_max_s, r[k].decode_s, r[k].total_s, r[k].hwm_mb, r[k].step_mean_cpu, r[k].decode_cpu,
           r[k].total_cpu);
    fflush(stdout);
    if (o.save) save_png(img[k], o.save, name);
  }
  loadavg(la1, sizeof la1);
  printf("load average at end:   %s\n\n", la1);
  printf("| stage | %s | %s |\n|---|---:|---:|\n", o.n_prec > 0 ? (o.prec[0] == DG_PRECISION_BF16 ? "bf16" : "f32") : "",
         o.n_prec > 1 ? "bf16" : "-");
#define ROW(label, field, fmt)                                                        \
  do {                                                                                \
    printf("| %s |", label);                                                          \
    for (int k = 0; k < 2; k++) {                                                     \
      if (k < o.n_prec && r[k].ok) printf(" " fmt " |", r[k].field);                  \
      else printf(" - |");                                                            \
    }                                                                                 \
    printf("\n");                                                                     \
  } while (0)
  ROW("model open (s)", load_s, "%.2f");
  if (o.stages) {
    ROW("text encoding, batch 2 (s)", text_s, "%.3f");
    ROW("VAE encode (s)", vae_enc_s, "%.2f");
    ROW("text encoding, CPU-s", text_cpu, "%.3f");
    ROW("VAE encode, CPU-s", vae_enc_cpu, "%.2f");
  }
  ROW("UNet CFG step 1 (s)", step1_s, "%.2f");
  ROW("UNet CFG step, mean of 2.. (s)", step_mean_s, "%.2f");
  ROW("UNet CFG step, min (s)", step_min_s, "%.2f");
  ROW("UNet CFG step, max (s)", step_max_s, "%.2f");
  ROW("VAE decode (s)", decode_s, "%.2f");
  ROW("total generate (s)", total_s, "%.2f");
  ROW("UNet CFG step, mean of 2.., CPU-s", step_mean_cpu, "%.2f");
  ROW("VAE decode, CPU-s", decode_cpu, "%.2f");
  ROW("total generate, CPU-s", total_cpu, "%.2f");
  ROW("UNet steps run", n_steps, "%d");
  ROW("RSS after open (MB)", rss_after_load_mb, "%.0f");
  ROW("peak RSS VmHWM (MB)", hwm_mb, "%.0f");
  ROW("peak RSS ru_maxrss (MB)", maxrss_mb, "%.0f");
#undef ROW
  if (o.n_prec == 2 && img[0] && img[1] && img[0]->width == img[1]->width &&
      img[0]->height == img[1]->height) {
    size_t n = (size_t)img[0]->width * (size_t)img[0]->height * 3;
    int maxd = 0;
    double sum = 0;
    size_t over2 = 0;
    for (size_t i = 0; i < n; i++) {
      int d = abs((int)img[0]->pixels[i] - (int)img[1]->pixels[i]);
      if (d > maxd) maxd = d;
      sum += d;
      if (d > 2) over2++;
    }
    printf("\nf32 vs bf16 image (u8): max |diff| %d, mean |diff| %.3f, values differing by > 2: %.3f%%\n",
           maxd, sum / (double)n, 100.0 * (double)over2 / (double)n);
  }
  dg_image_free(img[0]);
  dg_image_free(img[1]);
  dg_image_free(input);
  return failed;
}
