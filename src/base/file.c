#include "base/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

dg_status dg_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
                       size_t errlen) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    dg_set_error(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return DG_STATUS_ERR_IO;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  dg_status st = DG_STATUS_OK;
  while (buf) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n > max_bytes) {
      st = DG_STATUS_ERR_LIMIT;
      dg_set_error(err, errlen, "%s is larger than %zu bytes", path, max_bytes);
      break;
    }
    if (r == 0) break;
    if (n == cap) {
      char *nb = realloc(buf, 2 * cap + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  if (st == DG_STATUS_OK && !buf) {
    st = DG_STATUS_ERR_NOMEM;
    dg_set_error(err, errlen, "out of memory reading %s", path);
  }
  if (st == DG_STATUS_OK && ferror(f)) {
    st = DG_STATUS_ERR_IO;
    dg_set_error(err, errlen, "cannot read %s", path);
  }
  fclose(f);
  if (st != DG_STATUS_OK) {
    free(buf);
    return st;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return DG_STATUS_OK;
}

int dg_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dg_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
