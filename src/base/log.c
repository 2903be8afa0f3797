#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int dg__log_level = -1;

void dg_log_set_level(dg_log_level level) { dg__log_level = (int)level; }

static int current_level(void) {
  int lvl = __atomic_load_n(&dg__log_level, __ATOMIC_RELAXED);
  if (lvl < 0) {
    const char *e = getenv("DG_LOG");
    lvl = DG_LOG_LEVEL_INFO;
    if (e && strcmp(e, "debug") == 0) lvl = DG_LOG_LEVEL_DEBUG;
    else if (e && strcmp(e, "warn") == 0) lvl = DG_LOG_LEVEL_WARN;
    else if (e && strcmp(e, "error") == 0) lvl = DG_LOG_LEVEL_ERROR;
    __atomic_store_n(&dg__log_level, lvl, __ATOMIC_RELAXED);
  }
  return lvl;
}

void dg_log(dg_log_level level, const char *fmt, ...) {
  if ((int)level < current_level()) return;
  static const char *names[] = {"debug", "info", "warn", "error"};
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
          names[level], msg);
}
