/* Minimal leveled logging to stderr, thread-safe (one fprintf per line). */
#ifndef DG_BASE_LOG_H
#define DG_BASE_LOG_H

typedef enum dg_log_level {
  DG_LOG_LEVEL_DEBUG,
  DG_LOG_LEVEL_INFO,
  DG_LOG_LEVEL_WARN,
  DG_LOG_LEVEL_ERROR
} dg_log_level;

/* Messages below this level are dropped (default INFO; env DG_LOG=debug). */
void dg_log_set_level(dg_log_level level);
void dg_log(dg_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define DG_DEBUG(...) dg_log(DG_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define DG_INFO(...) dg_log(DG_LOG_LEVEL_INFO, __VA_ARGS__)
#define DG_WARN(...) dg_log(DG_LOG_LEVEL_WARN, __VA_ARGS__)
#define DG_ERROR(...) dg_log(DG_LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
