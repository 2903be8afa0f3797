/* Reading whole files with a size bound (configs, tokenizer files, images
 * named on the command line). */
#ifndef DG_BASE_FILE_H
#define DG_BASE_FILE_H

#include <stddef.h>

#include "base/status.h"

/* Read all of `path` into a new NUL-terminated buffer (*out, free() it) of
 * *len bytes (not counting the NUL).  ERR_IO (cannot open/read), ERR_LIMIT
 * (larger than max_bytes), ERR_NOMEM; the message, naming the file, in err. */
dg_status dg_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
                       size_t errlen);

/* 1 if path names an existing regular file / directory (following links). */
int dg_is_file(const char *path);
int dg_is_dir(const char *path);

#endif
