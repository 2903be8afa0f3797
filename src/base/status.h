/* One status list for the whole code base (libuv style X-macro).
 * The detailed message of a failure lives in the caller's context (a job, a
 * parse context, an error buffer), never in a global. */
#ifndef DG_BASE_STATUS_H
#define DG_BASE_STATUS_H

#define DG_STATUS_LIST(X)                                                   \
  X(OK, "ok")                                                               \
  X(ERR_NOMEM, "out of memory")                                             \
  X(ERR_INVALID, "invalid argument")                                        \
  X(ERR_IO, "input/output error")                                           \
  X(ERR_FORMAT, "malformed input")                                          \
  X(ERR_UNSUPPORTED, "unsupported")                                         \
  X(ERR_NOT_FOUND, "not found")                                             \
  X(ERR_LIMIT, "limit exceeded")                                            \
  X(ERR_SHAPE, "tensor shape mismatch")                                     \
  X(ERR_CANCELLED, "cancelled")                                             \
  X(ERR_TIMEOUT, "timed out")                                               \
  X(ERR_BUSY, "busy")                                                       \
  X(ERR_DB, "job store error")                                              \
  X(ERR_NETWORK, "network error")                                           \
  X(ERR_UNAVAILABLE, "model not installed")                                 \
  X(ERR_INTERNAL, "internal error")

typedef enum dg_status {
#define DG__STATUS_ENUM(name, msg) DG_STATUS_##name,
  DG_STATUS_LIST(DG__STATUS_ENUM)
#undef DG__STATUS_ENUM
  DG_STATUS_COUNT_
} dg_status;

/* Short description, e.g. "out of memory". Never NULL. */
const char *dg_strerror(dg_status s);
/* Symbolic name, e.g. "ERR_NOMEM". Never NULL. */
const char *dg_status_name(dg_status s);

/* Write a formatted message into a caller's error buffer (no-op when err is
 * NULL or n is 0): the one way library code reports what went wrong. */
#include <stddef.h>
void dg_set_error(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
