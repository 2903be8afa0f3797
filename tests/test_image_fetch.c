/* URL fetching against a local HTTP server (tests/data/image/fetch_server.py
 * on 127.0.0.1): success with allow_private, refusal of loopback / private
 * addresses (also after a redirect from a trusted hop), HTTP errors, size
 * cap with and without Content-Length, timeout, redirect limits/protocols. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "image/image_internal.h"
#include "t.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static pid_t server_pid = -1;

static int start_server(const char *dir, int *port) {
  char portfile[512], script[512];
  snprintf(portfile, sizeof portfile, "%s/port", dir);
  snprintf(script, sizeof script, "%s", t_data("image/fetch_server.py"));
  const char *py = getenv("DG_TEST_PYTHON");
  if (!py || !*py) py = "python3";
  server_pid = fork();
  if (server_pid < 0) return -1;
  if (server_pid == 0) {
    execlp(py, py, script, portfile, dir, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) { /* up to 10 s */
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", port) == 1;
      fclose(f);
      if (ok) return 0;
    }
    usleep(50000);
  }
  return -1;
}

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
  }
}

int main(void) {
  char dir[] = "/tmp/dg_fetch_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  /* the image the server hands out */
  dg_image *im = dg_image_new(6, 5, 3);
  for (int i = 0; i < 6 * 5 * 3; i++) im->pixels[i] = (uint8_t)(i * 7);
  uint8_t *png;
  size_t pn;
  dg_image_encode(im, DG_IMAGE_FORMAT_PNG, 0, &png, &pn);
  char path[600];
  snprintf(path, sizeof path, "%s/img.png", dir);
  FILE *f = fopen(path, "wb");
  fwrite(png, 1, pn, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/note.txt", dir);
  f = fopen(path, "wb");
  fputs("just text", f);
  fclose(f);

  int port = 0;
  if (start_server(dir, &port) != 0) {
    fprintf(stderr, "could not start the test HTTP server\n");
    stop_server();
    return 1;
  }
  char url[256], url2[256], trusted[64], err[256];
  snprintf(trusted, sizeof trusted, "127.0.0.1:%d", port);
  dg_fetch_limits fl = dg_fetch_limits_default();
  fl.allow_private = 1;
  fl.timeout_ms = 5000;
  uint8_t *raw;
  size_t rn;
  dg_image *img;

  /* 1. success (allowed because the operator allows private addresses) */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/img.png", port);
  CHECK(dg_image_load_param(url, &fl, NULL, &raw, &rn, &img, err, sizeof err) == DG_STATUS_OK);
  CHECK(rn == pn && raw && memcmp(raw, png, pn) == 0);
  CHECK(img && img->width == 6 && img->height == 5 && memcmp(img->pixels, im->pixels, 90) == 0);
  free(raw);
  dg_image_free(img);
  /* by name too */
  snprintf(url2, sizeof url2, "http://localhost:%d/img.png", port);
  CHECK(dg_image_load_param(url2, &fl, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_OK);
  dg_image_free(img);

  /* 2. loopback refused by default, by address and by name */
  dg_fetch_limits strict = fl;
  strict.allow_private = 0;
  CHECK(dg_image_load_param(url, &strict, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strcmp(err, "image: address 127.0.0.1 is not allowed") == 0, "%s", err);
  CHECK(dg_image_load_param(url2, &strict, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strstr(err, "is not allowed") != NULL, "%s", err);

  /* 3. HTTP errors and non-images */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/missing", port);
  CHECK(dg_image_load_param(url, &fl, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strcmp(err, "image: could not fetch URL: HTTP 404") == 0, "%s", err);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/note.txt", port);
  CHECK(dg_image_load_param(url, &fl, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK_MSG(strcmp(err, "image: not a PNG, JPEG or WebP image") == 0, "%s", err);
  /* nothing listening */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/img.png", port == 65535 ? 1 : port + 1);
  CHECK(dg_image_load_param(url, &fl, NULL, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK(strncmp(err, "image: could not fetch URL: ", 28) == 0);

  /* 4. size cap, with and without Content-Length */
  dg_fetch_limits small = fl;
  small.max_bytes = 1 << 20;
  uint8_t *body;
  size_t bn;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big", port);
  CHECK(dg__image_fetch(url, &small, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_LIMIT);
  CHECK(body == NULL);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big?nolen=1", port);
  CHECK(dg__image_fetch(url, &small, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_LIMIT);
  CHECK_MSG(strstr(err, "byte limit") != NULL, "%s", err);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big?len=1000&nolen=1", port);
  CHECK(dg__image_fetch(url, &small, NULL, &body, &bn, err, sizeof err) == DG_STATUS_OK);
  CHECK(bn == 1000);
  free(body);
  /* the image limit also caps the download */
  dg_image_limits il = dg_image_limits_default();
  il.max_bytes = 100000;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big", port);
  CHECK(dg_image_load_param(url, &fl, &il, NULL, NULL, &img, err, sizeof err) == DG_STATUS_ERR_LIMIT);

  /* 5. total timeout */
  dg_fetch_limits quick = fl;
  quick.timeout_ms = 800;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/slow?s=4", port);
  double t0 = now();
  CHECK(dg__image_fetch(url, &quick, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  double dt = now() - t0;
  CHECK_MSG(dt < 3.0, "timeout took %.2f s", dt);
  CHECK_MSG(strstr(err, "timed out") != NULL, "%s", err);

  /* 6. redirects: followed, limited, re-checked on every hop */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=/img.png", port);
  CHECK(dg__image_fetch(url, &strict, trusted, &body, &bn, err, sizeof err) == DG_STATUS_OK);
  CHECK(bn == pn);
  free(body);
  /* a trusted first hop redirecting to a private address is refused */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=http://10.0.0.1/x.png", port);
  CHECK(dg__image_fetch(url, &strict, trusted, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strcmp(err, "image: address 10.0.0.1 is not allowed") == 0, "%s", err);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=http://127.0.0.1:%d/img.png", port,
           port == 65535 ? 1 : port + 1);
  CHECK(dg__image_fetch(url, &strict, trusted, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strcmp(err, "image: address 127.0.0.1 is not allowed") == 0, "%s", err);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=http://[::1]:%d/img.png", port, port);
  CHECK(dg__image_fetch(url, &strict, trusted, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strcmp(err, "image: address ::1 is not allowed") == 0, "%s", err);
  /* and the same redirect is fine when private addresses are allowed */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=http://localhost:%d/img.png", port, port);
  CHECK(dg__image_fetch(url, &fl, NULL, &body, &bn, err, sizeof err) == DG_STATUS_OK);
  free(body);
  /* too many redirects; non-http schemes */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/loop", port);
  CHECK(dg__image_fetch(url, &fl, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strstr(err, "more than 3 redirects") != NULL, "%s", err);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=file:///etc/passwd", port);
  CHECK(dg__image_fetch(url, &fl, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK_MSG(strstr(err, "only http and https") != NULL, "%s", err);
  dg_fetch_limits noredir = fl;
  noredir.max_redirects = 0;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect?to=/img.png", port);
  CHECK(dg__image_fetch(url, &noredir, NULL, &body, &bn, err, sizeof err) == DG_STATUS_ERR_NETWORK);

  stop_server();
  snprintf(path, sizeof path, "rm -rf %s", dir);
  if (system(path) != 0) fprintf(stderr, "could not remove %s\n", dir);
  free(png);
  dg_image_free(im);
  T_DONE();
}
