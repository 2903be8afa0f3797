/* Replay driver for the fuzz targets, used when libFuzzer is not linked.
 * Usage: fuzz_X_replay DIR_OR_FILE...
 * Runs every corpus file, then a fixed number of deterministic mutations of
 * each (bit flips, byte sets, truncation, duplication), so that the CTest run
 * is a small fuzzing campaign of its own under ASan/UBSan. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static unsigned char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  unsigned char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
    len += r;
    if (len == cap) {
      unsigned char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  *n = len;
  return buf;
}

static void run_one(const unsigned char *d, size_t n, int mutations) {
  /* Copy into an exact-size heap buffer so ASan sees reads past the end. */
  unsigned char *copy = malloc(n ? n : 1);
  memcpy(copy, d, n);
  LLVMFuzzerTestOneInput(copy, n);
  for (int m = 0; m < mutations; m++) {
    size_t len = n;
    unsigned char *buf = malloc(2 * n + 16);
    memcpy(buf, d, n);
    int edits = 1 + (int)(next_rand() % 4);
    for (int e = 0; e < edits; e++) {
      uint64_t r = next_rand();
      switch (r % 5) {
      case 0: if (len) buf[(r >> 8) % len] ^= (unsigned char)(1u << ((r >> 40) % 8)); break;
      case 1: if (len) buf[(r >> 8) % len] = (unsigned char)(r >> 48); break;
      case 2: if (len) len = (r >> 8) % len; break;
      case 3: /* insert a copy of up to 8 bytes from elsewhere */
        if (len && len + 8 <= 2 * n + 16) {
          size_t at = (r >> 8) % len, from = (r >> 24) % len, k = 1 + (r >> 56) % 8;
          if (from + k > len) k = len - from;
          memmove(buf + at + k, buf + at, len - at);
          memmove(buf + at, buf + (from >= at ? from + k : from), k);
          len += k;
        }
        break;
      case 4: if (len) { static const unsigned char vals[] = {0, 0xff, 0x7f, 0x80, '"', '{', '}', ','}; buf[(r >> 8) % len] = vals[(r >> 32) % 8]; } break;
      }
    }
    unsigned char *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    free(buf);
  }
  free(copy);
}

static int run_path(const char *path, int mutations) {
  struct stat st;
  if (stat(path, &st) != 0) { fprintf(stderr, "cannot stat %s\n", path); return 0; }
  if (S_ISDIR(st.st_mode)) {
    DIR *dir = opendir(path);
    if (!dir) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      count += run_path(sub, mutations);
    }
    closedir(dir);
    return count;
  }
  size_t n = 0;
  unsigned char *d = read_file(path, &n);
  if (!d) return 0;
  run_one(d, n, mutations);
  free(d);
  return 1;
}

int main(int argc, char **argv) {
  const char *env = getenv("DG_FUZZ_MUTATIONS");
  int mutations = env ? atoi(env) : 500;
  int files = 0;
  for (int i = 1; i < argc; i++) files += run_path(argv[i], mutations);
  if (files == 0) { fprintf(stderr, "no corpus files found\n"); return 1; }
  printf("%d corpus files, %d mutations each: no crash\n", files, mutations);
  return 0;
}
