/* SQLite job-store backend: one database file (WAL, busy timeout), one
 * connection guarded by a mutex (each call is a few short statements), so
 * one process serialises its own access and other processes (the `keys`
 * command, a second server) coordinate through SQLite's file locks. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "queue/store_backend.h"

typedef struct sq {
  sqlite3 *db;        /* writes (and reads inside write transactions) */
  pthread_mutex_t mu;
  sqlite3 *rdb;       /* a second connection for the hot reads (status polls, media): in WAL
                         mode they never wait for a writer */
  pthread_mutex_t rmu;
  double retention;
} sq;

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS keys("
    " id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',"
    " credits REAL NOT NULL DEFAULT 0, slugs TEXT NOT NULL DEFAULT '*',"
    " rate_per_min INTEGER NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0, created_at REAL);"
    "CREATE TABLE IF NOT EXISTS jobs("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, slug TEXT NOT NULL, state TEXT NOT NULL,"
    " params TEXT NOT NULL, seed INTEGER NOT NULL DEFAULT 0, key_id INTEGER NOT NULL, cost REAL NOT NULL,"
    " idem_key TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL, expires_at REAL,"
    " heartbeat_at REAL, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0,"
    " total_steps INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0, error TEXT,"
    " outputs TEXT, inference_time REAL, webhook_url TEXT, webhook_base TEXT,"
    " webhook_state INTEGER NOT NULL DEFAULT 0, webhook_attempts INTEGER NOT NULL DEFAULT 0, webhook_next_at REAL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(key_id, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_expires ON jobs(expires_at);"
    "CREATE INDEX IF NOT EXISTS jobs_webhook ON jobs(webhook_state, webhook_next_at) WHERE webhook_url IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS blobs("
    " id TEXT PRIMARY KEY, job_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT, mime TEXT, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS blobs_job ON blobs(job_id);"
    "PRAGMA user_version=1;"; /* schema version, for future migrations */

static dg_status db_err(sq *q, const char *what) {
  DG_ERROR("job store: %s: %s", what, sqlite3_errmsg(q->db));
  return DG_STATUS_ERR_DB;
}

static sqlite3_stmt *prep_db(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    DG_ERROR("job store: prepare failed: %s (%s)", sqlite3_errmsg(db), sql);
    return NULL;
  }
  return st;
}

static sqlite3_stmt *prep(sq *q, const char *sql) { return prep_db(q->db, sql); }

static int exec(sq *q, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    DG_ERROR("job store: %s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
  }
  return rc;
}

/* BEGIN IMMEDIATE retried while another process holds the write lock. */
static int begin(sq *q) {
  for (int i = 0; i < 200; i++) {
    int rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) return 1;
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
  }
  return 0;
}

static void rollback(sq *q) { sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL); }
static int commit(sq *q) { return exec(q, "COMMIT") == SQLITE_OK; }

static dg_status sq_open(const char *path, void **impl, char *err, size_t errlen) {
  sq *q = calloc(1, sizeof *q);
  if (!q) return DG_STATUS_ERR_NOMEM;
  q->retention = 3600;
  pthread_mutex_init(&q->mu, NULL);
  if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    snprintf(err, errlen, "cannot open job store %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "out of memory");
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->mu);
    free(q);
    return DG_STATUS_ERR_DB;
  }
  sqlite3_busy_timeout(q->db, 10000);
  if (exec(q, "PRAGMA journal_mode=WAL") != SQLITE_OK || exec(q, "PRAGMA synchronous=NORMAL") != SQLITE_OK ||
      exec(q, "PRAGMA foreign_keys=ON") != SQLITE_OK ||
      /* effective for a new file only: freed media pages go back to the OS in sweep() */
      exec(q, "PRAGMA auto_vacuum=INCREMENTAL") != SQLITE_OK || exec(q, schema_sql) != SQLITE_OK) {
    snprintf(err, errlen, "cannot initialise job store %s: %s", path, sqlite3_errmsg(q->db));
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->mu);
    free(q);
    return DG_STATUS_ERR_DB;
  }
  pthread_mutex_init(&q->rmu, NULL);
  if (sqlite3_open_v2(path, &q->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open job store %s for reading: %s", path,
             q->rdb ? sqlite3_errmsg(q->rdb) : "out of memory");
    sqlite3_close(q->rdb);
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->rmu);
    pthread_mutex_destroy(&q->mu);
    free(q);
    return DG_STATUS_ERR_DB;
  }
  sqlite3_busy_timeout(q->rdb, 10000);
  *impl = q;
  return DG_STATUS_OK;
}

static void sq_close(void *impl) {
  sq *q = impl;
  if (!q) return;
  sqlite3_close(q->rdb);
  sqlite3_close(q->db);
  pthread_mutex_destroy(&q->rmu);
  pthread_mutex_destroy(&q->mu);
  free(q);
}

static void sq_set_retention(void *impl, double seconds) {
  sq *q = impl;
  pthread_mutex_lock(&q->mu);
  q->retention = seconds;
  pthread_mutex_unlock(&q->mu);
}

/* ---- keys ---- */

static dg_status sq_key_create(void *impl, const char *name, double credits, const char *slugs, int rate,
                               const char *hash, int64_t *id) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "INSERT INTO keys(hash, name, credits, slugs, rate_per_min, created_at) "
                             "VALUES(?,?,?,?,?,?) RETURNING id");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, credits);
    sqlite3_bind_text(st, 4, slugs, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, rate);
    sqlite3_bind_double(st, 6, dg_now());
    if (sqlite3_step(st) == SQLITE_ROW)
      *id = sqlite3_column_int64(st, 0);
    else
      rc = db_err(q, "key create");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static void copy_text(char *dst, size_t n, const unsigned char *src) {
  snprintf(dst, n, "%s", src ? (const char *)src : "");
}

static dg_status sq_key_lookup(void *impl, const char *hash, dg_key_info *out) {
  sq *q = impl;
  dg_status rc = DG_STATUS_ERR_NOT_FOUND;
  pthread_mutex_lock(&q->rmu);
  sqlite3_stmt *st = prep_db(q->rdb, "SELECT id, name, credits, slugs, rate_per_min, revoked FROM keys WHERE hash=?");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 5) == 0) {
      memset(out, 0, sizeof *out);
      out->id = sqlite3_column_int64(st, 0);
      copy_text(out->name, sizeof out->name, sqlite3_column_text(st, 1));
      out->credits = sqlite3_column_double(st, 2);
      copy_text(out->slugs, sizeof out->slugs, sqlite3_column_text(st, 3));
      out->rate_per_min = sqlite3_column_int(st, 4);
      rc = DG_STATUS_OK;
    }
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->rmu);
  return rc;
}

static dg_status sq_key_list(void *impl, json_t **out) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  json_t *arr = json_array();
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "SELECT id, name, credits, slugs, rate_per_min, revoked, created_at FROM keys ORDER BY id");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    while (sqlite3_step(st) == SQLITE_ROW)
      json_array_append_new(
          arr, json_pack("{s:I, s:s, s:f, s:s, s:i, s:b, s:f}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                         "name", (const char *)sqlite3_column_text(st, 1), "credits", sqlite3_column_double(st, 2),
                         "slugs", (const char *)sqlite3_column_text(st, 3), "rate_per_min",
                         sqlite3_column_int(st, 4), "revoked", sqlite3_column_int(st, 5), "created_at",
                         sqlite3_column_double(st, 6)));
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  if (rc != DG_STATUS_OK) {
    json_decref(arr);
    arr = NULL;
  }
  *out = arr;
  return rc;
}

static dg_status exec_id(sq *q, const char *sql, int64_t id, double d, int with_d) {
  dg_status rc = DG_STATUS_OK;
  sqlite3_stmt *st = prep(q, sql);
  if (!st) return DG_STATUS_ERR_DB;
  int k = 1;
  if (with_d) sqlite3_bind_double(st, k++, d);
  sqlite3_bind_int64(st, k, id);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = db_err(q, sql);
  else if (sqlite3_changes(q->db) == 0)
    rc = DG_STATUS_ERR_NOT_FOUND;
  sqlite3_finalize(st);
  return rc;
}

static dg_status sq_key_revoke(void *impl, int64_t id) {
  sq *q = impl;
  pthread_mutex_lock(&q->mu);
  dg_status rc = exec_id(q, "UPDATE keys SET revoked=1 WHERE id=?", id, 0, 0);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_key_credit(void *impl, int64_t id, double delta, double *balance) {
  sq *q = impl;
  pthread_mutex_lock(&q->mu);
  dg_status rc = exec_id(q, "UPDATE keys SET credits=credits+? WHERE id=?", id, delta, 1);
  if (rc == DG_STATUS_OK && balance) {
    sqlite3_stmt *st = prep(q, "SELECT credits FROM keys WHERE id=?");
    if (st) {
      sqlite3_bind_int64(st, 1, id);
      if (sqlite3_step(st) == SQLITE_ROW) *balance = sqlite3_column_double(st, 0);
      sqlite3_finalize(st);
    }
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

/* ---- jobs ---- */

static double key_credits_db(sqlite3 *db, int64_t key_id) {
  double c = 0;
  sqlite3_stmt *st = prep_db(db, "SELECT credits FROM keys WHERE id=?");
  if (st) {
    sqlite3_bind_int64(st, 1, key_id);
    if (sqlite3_step(st) == SQLITE_ROW) c = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
  }
  return c;
}

static double key_credits(sq *q, int64_t key_id) { return key_credits_db(q->db, key_id); }

static dg_status sq_submit(void *impl, const dg_job_submit *j, const char *new_id, char id_out[DG_ID_LEN],
                           int *existing, double *remaining) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  sqlite3_stmt *st = NULL;
  pthread_mutex_lock(&q->mu);
  if (!begin(q)) {
    rc = db_err(q, "begin");
    goto out;
  }
  if (j->idem_key) {
    /* An expired request (not swept yet) no longer answers: its key starts a new one. */
    st = prep(q, "UPDATE jobs SET idem_key=NULL WHERE key_id=? AND idem_key=? AND expires_at IS NOT NULL "
                 "AND expires_at<=?");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, j->key_id);
    sqlite3_bind_text(st, 2, j->idem_key, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, dg_now());
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    sqlite3_finalize(st);
    st = prep(q, "SELECT id FROM jobs WHERE key_id=? AND idem_key=?");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, j->key_id);
    sqlite3_bind_text(st, 2, j->idem_key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      copy_text(id_out, DG_ID_LEN, sqlite3_column_text(st, 0));
      *existing = 1;
      sqlite3_finalize(st);
      st = NULL;
      *remaining = key_credits(q, j->key_id);
      rollback(q);
      goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
  }
  st = prep(q, "UPDATE keys SET credits=credits-? WHERE id=? AND revoked=0 AND credits>=?");
  if (!st) goto fail;
  sqlite3_bind_double(st, 1, j->cost);
  sqlite3_bind_int64(st, 2, j->key_id);
  sqlite3_bind_double(st, 3, j->cost);
  if (sqlite3_step(st) != SQLITE_DONE) goto fail;
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_changes(q->db) == 0) {
    rollback(q);
    *remaining = key_credits(q, j->key_id);
    rc = DG_STATUS_ERR_LIMIT;
    goto out;
  }
  st = prep(q, "INSERT INTO jobs(id, slug, state, params, seed, key_id, cost, idem_key, created_at, webhook_url, "
               "webhook_base) VALUES(?,?,'QUEUED',?,?,?,?,?,?,?,?)");
  if (!st) goto fail;
  sqlite3_bind_text(st, 1, new_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, j->slug, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, j->params_json, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, j->seed);
  sqlite3_bind_int64(st, 5, j->key_id);
  sqlite3_bind_double(st, 6, j->cost);
  if (j->idem_key)
    sqlite3_bind_text(st, 7, j->idem_key, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 7);
  sqlite3_bind_double(st, 8, dg_now());
  if (j->webhook_url) {
    sqlite3_bind_text(st, 9, j->webhook_url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, j->webhook_base ? j->webhook_base : "", -1, SQLITE_STATIC);
  } else {
    sqlite3_bind_null(st, 9);
    sqlite3_bind_null(st, 10);
  }
  if (sqlite3_step(st) != SQLITE_DONE) goto fail;
  sqlite3_finalize(st);
  st = NULL;
  for (int i = 0; i < j->n_inputs; i++) {
    char bid[DG_ID_LEN];
    dg_random_hex(bid, 16);
    st = prep(q, "INSERT INTO blobs(id, job_id, kind, name, data) VALUES(?,?,'input',?,?)");
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, bid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, new_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->inputs[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 4, j->inputs[i].data, j->inputs[i].n, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    sqlite3_finalize(st);
    st = NULL;
  }
  *remaining = key_credits(q, j->key_id);
  if (!commit(q)) goto fail;
  snprintf(id_out, DG_ID_LEN, "%s", new_id);
  goto out;
fail:
  rc = db_err(q, "submit");
  sqlite3_finalize(st);
  rollback(q);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_job_state parse_state(const unsigned char *s) {
  if (!s) return DG_JOB_STATE_FAILED;
  if (strcmp((const char *)s, "QUEUED") == 0) return DG_JOB_STATE_QUEUED;
  if (strcmp((const char *)s, "PROCESSING") == 0) return DG_JOB_STATE_PROCESSING;
  if (strcmp((const char *)s, "COMPLETED") == 0) return DG_JOB_STATE_COMPLETED;
  return DG_JOB_STATE_FAILED;
}

static char *dup_col(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : NULL;
}

#define JOB_COLS                                                                                             \
  "id, slug, state, params, seed, key_id, cost, created_at, started_at, finished_at, expires_at, step, "      \
  "total_steps, attempts, cancel_requested, error, outputs, inference_time, seq, webhook_url, webhook_base, "      \
  "webhook_attempts"

static void read_job(sqlite3_stmt *st, dg_job *j) {
  memset(j, 0, sizeof *j);
  copy_text(j->id, sizeof j->id, sqlite3_column_text(st, 0));
  copy_text(j->slug, sizeof j->slug, sqlite3_column_text(st, 1));
  j->state = parse_state(sqlite3_column_text(st, 2));
  j->params_json = dup_col(st, 3);
  j->seed = sqlite3_column_int64(st, 4);
  j->key_id = sqlite3_column_int64(st, 5);
  j->cost = sqlite3_column_double(st, 6);
  j->created_at = sqlite3_column_double(st, 7);
  j->started_at = sqlite3_column_double(st, 8);
  j->finished_at = sqlite3_column_double(st, 9);
  j->expires_at = sqlite3_column_double(st, 10);
  j->step = sqlite3_column_int(st, 11);
  j->total_steps = sqlite3_column_int(st, 12);
  j->attempts = sqlite3_column_int(st, 13);
  j->cancel_requested = sqlite3_column_int(st, 14);
  j->error = dup_col(st, 15);
  j->outputs_json = dup_col(st, 16);
  j->inference_time = sqlite3_column_double(st, 17);
  j->webhook_url = dup_col(st, 19);
  j->webhook_base = dup_col(st, 20);
  j->webhook_attempts = sqlite3_column_int(st, 21);
}

static dg_status sq_get(void *impl, const char *id, dg_job *out) {
  sq *q = impl;
  dg_status rc = DG_STATUS_ERR_NOT_FOUND;
  pthread_mutex_lock(&q->rmu);
  sqlite3_stmt *st = prep_db(q->rdb, "SELECT " JOB_COLS " FROM jobs WHERE id=? AND (expires_at IS NULL OR expires_at>?)");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
    goto out;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, dg_now());
  if (sqlite3_step(st) == SQLITE_ROW) {
    read_job(st, out);
    int64_t seq = sqlite3_column_int64(st, 18);
    rc = DG_STATUS_OK;
    sqlite3_finalize(st);
    st = NULL;
    if (out->state == DG_JOB_STATE_QUEUED) {
      st = prep_db(q->rdb, "SELECT COUNT(*) FROM jobs WHERE state='QUEUED' AND seq<?");
      if (st) {
        sqlite3_bind_int64(st, 1, seq);
        if (sqlite3_step(st) == SQLITE_ROW) out->queue_position = sqlite3_column_int64(st, 0);
      }
    }
    out->remaining_credits = key_credits_db(q->rdb, out->key_id);
  }
  sqlite3_finalize(st);
out:
  pthread_mutex_unlock(&q->rmu);
  return rc;
}

static dg_status sq_claim(void *impl, const char *worker, dg_job *out) {
  sq *q = impl;
  dg_status rc = DG_STATUS_ERR_NOT_FOUND;
  double now = dg_now();
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET state='PROCESSING', worker=?, started_at=?, heartbeat_at=?, "
                             "attempts=attempts+1, step=0, total_steps=0 "
                             "WHERE seq=(SELECT seq FROM jobs WHERE state='QUEUED' ORDER BY seq LIMIT 1) "
                             "AND state='QUEUED' RETURNING " JOB_COLS);
  if (!st) {
    rc = DG_STATUS_ERR_DB;
    goto out;
  }
  sqlite3_bind_text(st, 1, worker, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, now);
  sqlite3_bind_double(st, 3, now);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    read_job(st, out);
    rc = DG_STATUS_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
    }
  } else if (r != SQLITE_DONE) {
    rc = db_err(q, "claim");
  }
  sqlite3_finalize(st);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status get_blob(sqlite3 *db, const char *sql, const char *a, const char *b, uint8_t **data, size_t *n,
                          char *mime) {
  dg_status rc = DG_STATUS_ERR_NOT_FOUND;
  sqlite3_stmt *st = prep_db(db, sql);
  if (!st) return DG_STATUS_ERR_DB;
  sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
  if (b)
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
  else
    sqlite3_bind_double(st, 2, dg_now());
  if (sqlite3_step(st) == SQLITE_ROW) {
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    const void *p = sqlite3_column_blob(st, 0);
    *data = malloc(len ? len : 1);
    if (!*data) {
      rc = DG_STATUS_ERR_NOMEM;
    } else {
      if (len) memcpy(*data, p, len);
      *n = len;
      if (mime) copy_text(mime, 32, sqlite3_column_text(st, 1));
      rc = DG_STATUS_OK;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

static dg_status sq_input_get(void *impl, const char *job_id, const char *name, uint8_t **data, size_t *n) {
  sq *q = impl;
  pthread_mutex_lock(&q->mu);
  dg_status rc = get_blob(q->db, "SELECT data, mime FROM blobs WHERE job_id=? AND name=? AND kind='input'", job_id,
                          name, data, n, NULL);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_progress(void *impl, const char *id, int step, int total, int *cancel_requested) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET step=?, total_steps=?, heartbeat_at=? WHERE id=? AND "
                             "state='PROCESSING' RETURNING cancel_requested");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
    goto out;
  }
  sqlite3_bind_int(st, 1, step);
  sqlite3_bind_int(st, 2, total);
  sqlite3_bind_double(st, 3, dg_now());
  sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    if (cancel_requested) *cancel_requested = sqlite3_column_int(st, 0);
    while (sqlite3_step(st) == SQLITE_ROW) {
    }
  } else if (r == SQLITE_DONE) {
    rc = DG_STATUS_ERR_NOT_FOUND; /* no longer ours (cancelled / expired) */
    if (cancel_requested) *cancel_requested = 1;
  } else {
    rc = db_err(q, "progress");
  }
  sqlite3_finalize(st);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_media_put(void *impl, const char *job_id, const char *mime, const uint8_t *data, size_t n,
                              const char *media_id) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "INSERT INTO blobs(id, job_id, kind, mime, data) VALUES(?,?,'output',?,?)");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_text(st, 1, media_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, mime, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 4, data, n, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(q, "media put");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_media_get(void *impl, const char *media_id, uint8_t **data, size_t *n, char mime[32]) {
  sq *q = impl;
  pthread_mutex_lock(&q->rmu);
  dg_status rc = get_blob(q->rdb,
                          "SELECT b.data, b.mime FROM blobs b JOIN jobs j ON j.id=b.job_id WHERE b.id=? AND "
                          "b.kind='output' AND j.state='COMPLETED' AND j.expires_at>?",
                          media_id, NULL, data, n, mime);
  pthread_mutex_unlock(&q->rmu);
  return rc;
}

static dg_status sq_complete(void *impl, const char *id, const char *outputs_json, double inference_time) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  double now = dg_now();
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET state='COMPLETED', outputs=?, inference_time=?, finished_at=?, "
                             "expires_at=?, step=total_steps WHERE id=? AND state='PROCESSING'");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_text(st, 1, outputs_json, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, inference_time);
    sqlite3_bind_double(st, 3, now);
    sqlite3_bind_double(st, 4, now + q->retention);
    sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
      rc = db_err(q, "complete");
    else if (sqlite3_changes(q->db) == 0)
      rc = DG_STATUS_ERR_NOT_FOUND;
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

/* Caller holds the mutex and an open transaction. */
static dg_status fail_locked(sq *q, const char *id, const char *error, const char *from_states) {
  char sql[320];
  double now = dg_now();
  snprintf(sql, sizeof sql,
           "UPDATE jobs SET state='FAILED', error=?, finished_at=?, expires_at=? WHERE id=? AND state IN (%s) "
           "RETURNING key_id, cost",
           from_states);
  sqlite3_stmt *st = prep(q, sql);
  if (!st) return DG_STATUS_ERR_DB;
  sqlite3_bind_text(st, 1, error, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, now);
  sqlite3_bind_double(st, 3, now + q->retention);
  sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  if (r != SQLITE_ROW) {
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? DG_STATUS_ERR_NOT_FOUND : db_err(q, "fail");
  }
  int64_t key_id = sqlite3_column_int64(st, 0);
  double cost = sqlite3_column_double(st, 1);
  while (sqlite3_step(st) == SQLITE_ROW) {
  }
  sqlite3_finalize(st);
  /* Refund: the job FAILED, so the client pays nothing. */
  dg_status rc = exec_id(q, "UPDATE keys SET credits=credits+? WHERE id=?", key_id, cost, 1);
  return rc == DG_STATUS_ERR_NOT_FOUND ? DG_STATUS_OK : rc;
}

static dg_status sq_fail(void *impl, const char *id, const char *error) {
  sq *q = impl;
  pthread_mutex_lock(&q->mu);
  dg_status rc;
  if (!begin(q)) {
    rc = db_err(q, "begin");
  } else {
    rc = fail_locked(q, id, error, "'QUEUED','PROCESSING'");
    if (rc == DG_STATUS_OK) {
      if (!commit(q)) rc = DG_STATUS_ERR_DB;
    } else {
      rollback(q);
    }
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_cancel(void *impl, const char *id, dg_job_state *state_out) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  if (!begin(q)) {
    rc = db_err(q, "begin");
    goto out;
  }
  rc = fail_locked(q, id, "cancelled by the client before it started", "'QUEUED'");
  if (rc == DG_STATUS_OK) {
    *state_out = DG_JOB_STATE_FAILED;
    if (!commit(q)) rc = DG_STATUS_ERR_DB;
    goto out;
  }
  if (rc != DG_STATUS_ERR_NOT_FOUND) {
    rollback(q);
    goto out;
  }
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET cancel_requested=1 WHERE id=? AND state='PROCESSING'");
  if (!st) {
    rollback(q);
    rc = DG_STATUS_ERR_DB;
    goto out;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
  if (sqlite3_changes(q->db) == 1) {
    *state_out = DG_JOB_STATE_PROCESSING;
    rc = commit(q) ? DG_STATUS_OK : DG_STATUS_ERR_DB;
    goto out;
  }
  rollback(q);
  /* Already finished (or unknown): report the state as it is. */
  st = prep(q, "SELECT state FROM jobs WHERE id=? AND (expires_at IS NULL OR expires_at>?)");
  rc = DG_STATUS_ERR_NOT_FOUND;
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, dg_now());
    if (sqlite3_step(st) == SQLITE_ROW) {
      *state_out = parse_state(sqlite3_column_text(st, 0));
      rc = DG_STATUS_OK;
    }
    sqlite3_finalize(st);
  }
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_recover(void *impl, int max_attempts, double stale_s, int *requeued, int *failed) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  *requeued = *failed = 0;
  double cutoff = stale_s > 0 ? dg_now() - stale_s : 1e300;
  pthread_mutex_lock(&q->mu);
  if (!begin(q)) {
    rc = db_err(q, "begin");
    goto out;
  }
  /* Interrupted too often: FAILED (refunded) with a clear message. */
  sqlite3_stmt *st = prep(q, "SELECT id, attempts FROM jobs WHERE state='PROCESSING' AND "
                             "(heartbeat_at IS NULL OR heartbeat_at<?) AND attempts>=?");
  if (!st) goto fail;
  sqlite3_bind_double(st, 1, cutoff);
  sqlite3_bind_int(st, 2, max_attempts);
  char ids[64][DG_ID_LEN];
  int nid = 0, more = 1;
  while (more) {
    nid = 0;
    sqlite3_reset(st);
    while (nid < 64 && sqlite3_step(st) == SQLITE_ROW) copy_text(ids[nid++], DG_ID_LEN, sqlite3_column_text(st, 0));
    more = nid == 64;
    for (int i = 0; i < nid; i++) {
      char msg[200];
      snprintf(msg, sizeof msg,
               "the server stopped while this request was running, %d time(s); giving up (not retried again)",
               max_attempts);
      if (fail_locked(q, ids[i], msg, "'PROCESSING'") == DG_STATUS_OK) (*failed)++;
    }
  }
  sqlite3_finalize(st);
  st = prep(q, "UPDATE jobs SET state='QUEUED', worker=NULL, step=0, total_steps=0, cancel_requested=0 "
               "WHERE state='PROCESSING' AND (heartbeat_at IS NULL OR heartbeat_at<?)");
  if (!st) goto fail;
  sqlite3_bind_double(st, 1, cutoff);
  if (sqlite3_step(st) != SQLITE_DONE) {
    sqlite3_finalize(st);
    goto fail;
  }
  *requeued = sqlite3_changes(q->db);
  sqlite3_finalize(st);
  if (!commit(q)) goto fail;
  goto out;
fail:
  rc = db_err(q, "recover");
  rollback(q);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_release(void *impl, const char *id) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET state='QUEUED', worker=NULL, step=0, total_steps=0, "
                             "attempts=CASE WHEN attempts>0 THEN attempts-1 ELSE 0 END WHERE id=? AND state='PROCESSING'");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(q, "release");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_webhooks_due(void *impl, int max_jobs, dg_job **out, int *n) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  *out = NULL;
  *n = 0;
  if (max_jobs <= 0) return DG_STATUS_OK;
  dg_job *arr = calloc((size_t)max_jobs, sizeof *arr);
  if (!arr) return DG_STATUS_ERR_NOMEM;
  double now = dg_now();
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "SELECT " JOB_COLS " FROM jobs WHERE webhook_url IS NOT NULL AND webhook_state=0 AND "
                             "state IN ('COMPLETED','FAILED') AND (webhook_next_at IS NULL OR webhook_next_at<=?) "
                             "AND expires_at>? ORDER BY finished_at LIMIT ?");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_double(st, 2, now);
    sqlite3_bind_int(st, 3, max_jobs);
    while (*n < max_jobs && sqlite3_step(st) == SQLITE_ROW) {
      read_job(st, &arr[*n]);
      arr[*n].remaining_credits = 0;
      (*n)++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < *n; i++) arr[i].remaining_credits = key_credits(q, arr[i].key_id);
  }
  pthread_mutex_unlock(&q->mu);
  if (*n == 0) {
    free(arr);
    arr = NULL;
  }
  *out = arr;
  return rc;
}

static dg_status sq_webhook_done(void *impl, const char *id, int delivered, double next_at) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET webhook_attempts=webhook_attempts+1, webhook_state=?, "
                             "webhook_next_at=? WHERE id=?");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_int(st, 1, delivered ? 1 : next_at > 0 ? 0 : 2);
    sqlite3_bind_double(st, 2, next_at);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(q, "webhook");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_heartbeat(void *impl, const char *worker_prefix) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  pthread_mutex_lock(&q->mu);
  /* substr() rather than LIKE: the prefix is data, not a pattern. */
  sqlite3_stmt *st = prep(q, "UPDATE jobs SET heartbeat_at=? WHERE state='PROCESSING' AND "
                             "substr(worker, 1, length(?))=?");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    sqlite3_bind_double(st, 1, dg_now());
    sqlite3_bind_text(st, 2, worker_prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, worker_prefix, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(q, "heartbeat");
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_sweep(void *impl, int *deleted) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  double now = dg_now();
  *deleted = 0;
  pthread_mutex_lock(&q->mu);
  if (!begin(q)) {
    rc = db_err(q, "begin");
    goto out;
  }
  sqlite3_stmt *st = prep(q, "DELETE FROM blobs WHERE job_id IN (SELECT id FROM jobs WHERE expires_at<=?)");
  if (!st) goto fail;
  sqlite3_bind_double(st, 1, now);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  if (r != SQLITE_DONE) goto fail;
  st = prep(q, "DELETE FROM jobs WHERE expires_at<=?");
  if (!st) goto fail;
  sqlite3_bind_double(st, 1, now);
  r = sqlite3_step(st);
  sqlite3_finalize(st);
  if (r != SQLITE_DONE) goto fail;
  *deleted = sqlite3_changes(q->db);
  /* Inputs of finished jobs are no longer needed. */
  st = prep(q, "DELETE FROM blobs WHERE kind='input' AND job_id IN "
               "(SELECT id FROM jobs WHERE state IN ('COMPLETED','FAILED'))");
  if (!st) goto fail;
  r = sqlite3_step(st);
  sqlite3_finalize(st);
  if (r != SQLITE_DONE) goto fail;
  if (!commit(q)) goto fail;
  if (*deleted > 0) sqlite3_exec(q->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
  goto out;
fail:
  rc = db_err(q, "sweep");
  rollback(q);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static dg_status sq_stats(void *impl, dg_store_stats *s) {
  sq *q = impl;
  dg_status rc = DG_STATUS_OK;
  memset(s, 0, sizeof *s);
  pthread_mutex_lock(&q->rmu);
  sqlite3_stmt *st = prep_db(q->rdb, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  if (!st) {
    rc = DG_STATUS_ERR_DB;
  } else {
    while (sqlite3_step(st) == SQLITE_ROW) {
      int64_t c = sqlite3_column_int64(st, 1);
      switch (parse_state(sqlite3_column_text(st, 0))) {
      case DG_JOB_STATE_QUEUED: s->queued = c; break;
      case DG_JOB_STATE_PROCESSING: s->processing = c; break;
      case DG_JOB_STATE_COMPLETED: s->completed = c; break;
      case DG_JOB_STATE_FAILED: s->failed = c; break;
      }
    }
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&q->rmu);
  return rc;
}

const dg__store_backend dg__store_sqlite = {
    "sqlite:",     sq_open,      sq_close,     sq_set_retention, sq_key_create, sq_key_lookup, sq_key_list,
    sq_key_revoke, sq_key_credit, sq_submit,   sq_get,           sq_claim,      sq_input_get,  sq_progress,
    sq_media_put,  sq_media_get, sq_complete,  sq_fail,          sq_cancel,     sq_recover,    sq_release, sq_webhooks_due, sq_webhook_done, sq_heartbeat, sq_sweep,
    sq_stats,
};
