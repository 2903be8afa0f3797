#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *dg_strerror(dg_status s) {
  switch (s) {
#define DG__STATUS_MSG(name, msg) case DG_STATUS_##name: return msg;
    DG_STATUS_LIST(DG__STATUS_MSG)
#undef DG__STATUS_MSG
  default: return "unknown status";
  }
}

const char *dg_status_name(dg_status s) {
  switch (s) {
#define DG__STATUS_NAME(name, msg) case DG_STATUS_##name: return #name;
    DG_STATUS_LIST(DG__STATUS_NAME)
#undef DG__STATUS_NAME
  default: return "UNKNOWN";
  }
}

void dg_set_error(char *err, size_t n, const char *fmt, ...) {
  if (!err || n == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}
