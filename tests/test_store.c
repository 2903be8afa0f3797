/* The SQLite job store under edge timings the server tests cannot reach
 * reliably: an Idempotency-Key whose request has expired but not been swept
 * yet must start a new request (not replay an id that answers 404). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/store.h"
#include "t.h"

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(void) {
  char dir[] = "/tmp/dg-test-store-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char url[256], err[256] = "";
  snprintf(url, sizeof url, "sqlite:%s/daguerre.db", dir);
  dg_store *s = NULL;
  CHECK(dg_store_open(url, &s, err, sizeof err) == DG_STATUS_OK);
  if (!s) T_DONE();
  dg_store_set_retention(s, 0.2);
  char key[128];
  int64_t kid = 0;
  CHECK(dg_store_key_create(s, "t", 10, "*", 0, key, sizeof key, &kid) == DG_STATUS_OK);

  /* Submit with an idempotency key, run it to COMPLETED. */
  dg_job_submit js = {"test-echo", "{}", 7, kid, 1.0, "idem-1", NULL, 0, NULL, NULL};
  char id1[DG_ID_LEN], id2[DG_ID_LEN], id3[DG_ID_LEN];
  int existing = -1;
  double remaining = 0;
  CHECK(dg_store_submit(s, &js, id1, &existing, &remaining) == DG_STATUS_OK);
  CHECK(existing == 0);
  CHECK_NEAR(remaining, 9.0, 1e-9);
  /* A replay while it is retained: the same id, nothing charged. */
  CHECK(dg_store_submit(s, &js, id2, &existing, &remaining) == DG_STATUS_OK);
  CHECK(existing == 1);
  CHECK(strcmp(id1, id2) == 0);
  CHECK_NEAR(remaining, 9.0, 1e-9);
  dg_job j;
  CHECK(dg_store_claim(s, "w0", &j) == DG_STATUS_OK);
  CHECK(strcmp(j.id, id1) == 0);
  dg_job_clear(&j);
  CHECK(dg_store_complete(s, id1, "[]", 0.1) == DG_STATUS_OK);

  /* Expired (not swept): the id is gone for clients ... */
  nap_ms(400);
  CHECK(dg_store_get(s, id1, &j) == DG_STATUS_ERR_NOT_FOUND);
  /* ... so the same Idempotency-Key is a new request, charged, that exists. */
  existing = -1;
  CHECK(dg_store_submit(s, &js, id3, &existing, &remaining) == DG_STATUS_OK);
  CHECK(existing == 0);
  CHECK(strcmp(id3, id1) != 0);
  CHECK_NEAR(remaining, 8.0, 1e-9);
  CHECK(dg_store_get(s, id3, &j) == DG_STATUS_OK);
  if (j.id[0]) CHECK(j.state == DG_JOB_STATE_QUEUED);
  dg_job_clear(&j);
  /* And a replay now returns that new request. */
  CHECK(dg_store_submit(s, &js, id2, &existing, &remaining) == DG_STATUS_OK);
  CHECK(existing == 1);
  CHECK(strcmp(id2, id3) == 0);
  int deleted = 0;
  CHECK(dg_store_sweep(s, &deleted) == DG_STATUS_OK);
  CHECK(deleted == 1);

  dg_store_close(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  T_DONE();
}
