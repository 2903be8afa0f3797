/* Client library: typed parameters, output naming, base URL handling,
 * outputs of v1 bodies, and transport errors (no server needed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base64.h"
#include "client/client.h"
#include "t.h"

static json_t *parse1(const char *arg) {
  json_t *o = json_object();
  char err[256];
  if (dg_client_parse_param(arg, o, err, sizeof err) != DG_STATUS_OK) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static int dumps_is(const char *arg, const char *want) {
  json_t *o = parse1(arg);
  if (!o) return 0;
  char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  int ok = strcmp(s, want) == 0;
  if (!ok) fprintf(stderr, "  %s -> %s (want %s)\n", arg, s, want);
  free(s);
  json_decref(o);
  return ok;
}

static int path_is(const char *pattern, const char *id, size_t i, size_t n, const char *ext,
                   const char *want) {
  char out[256];
  if (dg_client_output_path(pattern, id, i, n, ext, out, sizeof out) != DG_STATUS_OK) return 0;
  if (strcmp(out, want) != 0) fprintf(stderr, "  %s -> %s (want %s)\n", pattern ? pattern : "(null)", out, want);
  return strcmp(out, want) == 0;
}

/* A scripted fake API server (Python, loopback): the submit answer points at
 * non-standard status/response URLs (the client must use them, not derive
 * its own), the status URL answers 503 twice before PROCESSING/COMPLETED,
 * a failing request answers 422 FAILED, v1 answers raw WebP bytes. */
static const char fake_py[] =
    "import http.server, json, os, sys\n"
    "state = {'polls': 0}\n"
    "PNG = bytes([0x89,80,78,71,13,10,26,10]) + b'fake-png'\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def send(self, code, body, ctype='application/json', hdrs=()):\n"
    "        if not isinstance(body, bytes): body = json.dumps(body).encode()\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Type', ctype)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        for k, v in hdrs: self.send_header(k, v)\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def base(self): return 'http://' + self.headers['Host']\n"
    "    def do_POST(self):\n"
    "        n = int(self.headers.get('Content-Length', 0)); body = json.loads(self.rfile.read(n) or b'{}')\n"
    "        if self.headers.get('x-api-key') != 'k1': return self.send(401, {'error': 'bad key'})\n"
    "        if self.path == '/v2/requests/abc/cancel': return self.send(200, {'request_id': 'abc', 'status': 'PROCESSING', 'cancel_requested': True})\n"
    "        if self.path.startswith('/v2/requests/'): return self.send(404, {'error': 'unknown request'})\n"
    "        if self.path == '/v1/test': return self.send(200, b'RIFF\\x04\\x00\\x00\\x00WEBP', 'image/webp', [('x-request-id', 'sync1')])\n"
    "        rid = 'fail1' if self.path == '/v2/failing' else 'abc'\n"
    "        if body.get('steps') != 3: return self.send(400, {'error': 'steps must be 3'})\n"
    "        b = self.base()\n"
    "        self.send(200, {'request_id': rid, 'status': 'QUEUED', 'poll_url': b + '/custom/status/' + rid,\n"
    "                        'status_url': b + '/custom/status/' + rid, 'response_url': b + '/custom/result/' + rid})\n"
    "    def do_GET(self):\n"
    "        b = self.base()\n"
    "        if self.path == '/custom/status/abc':\n"
    "            state['polls'] += 1; p = state['polls']\n"
    "            if p <= 2: return self.send(503, {'error': 'busy'})\n"
    "            return self.send(200, {'request_id': 'abc', 'status': 'PROCESSING' if p == 3 else 'COMPLETED'})\n"
    "        if self.path == '/custom/result/abc':\n"
    "            return self.send(200, {'request_id': 'abc', 'status': 'COMPLETED', 'error': None,\n"
    "                                   'output': [b + '/m/1.png', b + '/m/2.png'], 'metrics': {}})\n"
    "        if self.path.startswith('/m/'): return self.send(200, PNG, 'image/png')\n"
    "        if self.path == '/custom/status/fail1':\n"
    "            return self.send(422, {'request_id': 'fail1', 'status': 'FAILED', 'error': 'boom', 'metrics': {}})\n"
    "        if self.path == '/v2/requests/down/status': return self.send(503, {'error': 'down'})\n"
    "        return self.send(404, {'error': 'unknown request'})\n"
    "srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(srv.server_address[1])); os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "srv.serve_forever()\n";

static void test_against_fake_server(void) {
  char dir[] = "/tmp/dg_client_fake_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0);
    return;
  }
  char script[256], portfile[256];
  snprintf(script, sizeof script, "%s/fake.py", dir);
  snprintf(portfile, sizeof portfile, "%s/port", dir);
  FILE *f = fopen(script, "w");
  fputs(fake_py, f);
  fclose(f);
  const char *py = getenv("DG_TEST_PYTHON");
  if (!py || !*py) py = "python3";
  pid_t pid = fork();
  if (pid == 0) {
    execlp(py, py, script, portfile, (char *)NULL);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && !port; i++) {
    FILE *pf = fopen(portfile, "r");
    if (pf) {
      if (fscanf(pf, "%d", &port) != 1) port = 0;
      fclose(pf);
    }
    if (!port) usleep(50000);
  }
  CHECK(port > 0);
  if (port > 0) {
    char base[64], err[512];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", port);
    dg_client *c = dg_client_new(base, "k1");
    json_t *params = json_pack("{s:i}", "steps", 3);
    dg_client_response r;
    char *id = NULL;
    /* submit + wait on the server's own URLs, through two 503s */
    CHECK(dg_client_call(c, "test", params, 0, 30, 0.05, &id, &r, err, sizeof err) == DG_STATUS_OK);
    CHECK(id && strcmp(id, "abc") == 0);
    CHECK(dg_client_body_status(r.json) && strcmp(dg_client_body_status(r.json), "COMPLETED") == 0);
    dg_client_media *m = NULL;
    size_t n = 0;
    CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_OK && n == 2);
    CHECK(n == 2 && m[1].n == 16 && strcmp(m[1].ext, "png") == 0);
    dg_client_media_free(m, n);
    dg_client_response_clear(&r);
    free(id);
    /* FAILED answered as 422: a final body, not an HTTP error */
    CHECK(dg_client_call(c, "failing", params, 0, 30, 0.05, &id, &r, err, sizeof err) == DG_STATUS_OK);
    CHECK(r.http_status == 422 && strcmp(dg_client_body_status(r.json), "FAILED") == 0);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "error")), "boom") == 0);
    dg_client_response_clear(&r);
    free(id);
    /* v1: raw bytes and x-request-id */
    CHECK(dg_client_call(c, "test", params, 1, 30, 0.05, &id, &r, err, sizeof err) == DG_STATUS_OK);
    CHECK(id && strcmp(id, "sync1") == 0 && r.json == NULL && r.body_n == 12);
    CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_OK && n == 1 && strcmp(m[0].ext, "webp") == 0);
    dg_client_media_free(m, n);
    dg_client_response_clear(&r);
    free(id);
    /* HTTP errors carry the server's message */
    json_t *bad = json_pack("{s:i}", "steps", 4);
    CHECK(dg_client_submit(c, "test", bad, &id, &r, err, sizeof err) == DG_STATUS_ERR_NETWORK);
    CHECK_MSG(strcmp(err, "HTTP 400: steps must be 3") == 0, "%s", err);
    CHECK(r.http_status == 400);
    dg_client_response_clear(&r);
    json_decref(bad);
    CHECK(dg_client_status(c, "nope", &r, err, sizeof err) == DG_STATUS_ERR_NETWORK);
    CHECK_MSG(strcmp(err, "HTTP 404: unknown request") == 0, "%s", err);
    dg_client_response_clear(&r);
    /* cancel */
    CHECK(dg_client_cancel(c, "abc", &r, err, sizeof err) == DG_STATUS_OK);
    CHECK(json_is_true(json_object_get(r.json, "cancel_requested")));
    dg_client_response_clear(&r);
    CHECK(dg_client_cancel(c, "zzz", &r, err, sizeof err) == DG_STATUS_ERR_NETWORK && r.http_status == 404);
    dg_client_response_clear(&r);
    /* persistent 503 while waiting: given up after 5 tries */
    CHECK(dg_client_wait(c, "down", 30, 0.01, &r, err, sizeof err) == DG_STATUS_ERR_NETWORK);
    CHECK(r.http_status == 503);
    dg_client_response_clear(&r);
    /* a wrong key */
    dg_client *c2 = dg_client_new(base, "wrong");
    CHECK(dg_client_submit(c2, "test", params, &id, &r, err, sizeof err) == DG_STATUS_ERR_NETWORK);
    CHECK(strcmp(err, "HTTP 401: bad key") == 0);
    dg_client_response_clear(&r);
    dg_client_free(c2);
    json_decref(params);
    dg_client_free(c);
  }
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
  unlink(script);
  unlink(portfile);
  rmdir(dir);
}

int main(void) {
  /* typed values */
  CHECK(dumps_is("steps=30", "{\"steps\":30}"));
  CHECK(dumps_is("strength=0.75", "{\"strength\":0.75}"));
  CHECK(dumps_is("seed=-1", "{\"seed\":-1}"));
  CHECK(dumps_is("x=1e3", "{\"x\":1000.0}"));
  CHECK(dumps_is("base64=true", "{\"base64\":true}"));
  CHECK(dumps_is("flag=false", "{\"flag\":false}"));
  CHECK(dumps_is("seed=null", "{\"seed\":null}"));
  CHECK(dumps_is("prompt=a cat, 4k", "{\"prompt\":\"a cat, 4k\"}"));
  CHECK(dumps_is("v=007", "{\"v\":\"007\"}"));       /* not a JSON number */
  CHECK(dumps_is("v=1.", "{\"v\":\"1.\"}"));
  CHECK(dumps_is("v=True", "{\"v\":\"True\"}"));
  CHECK(dumps_is("v=", "{\"v\":\"\"}"));
  CHECK(dumps_is("eq=a=b", "{\"eq\":\"a=b\"}"));
  CHECK(dumps_is("big=123456789012345678901234567890", "{\"big\":1.2345678901234568e29}"));
  CHECK(dumps_is("seed:=\"42\"", "{\"seed\":\"42\"}"));
  CHECK(dumps_is("l:=[1, {\"a\": null}]", "{\"l\":[1,{\"a\":null}]}"));
  CHECK(dumps_is("n:=3", "{\"n\":3}"));
  CHECK(parse1("noequals") == NULL);
  CHECK(parse1("=v") == NULL);
  CHECK(parse1(":=1") == NULL);
  CHECK(parse1("bad:={") == NULL);
  CHECK(parse1("img=@/nonexistent/file.png") == NULL);
  /* k=@file: base64 of the bytes */
  char path[] = "/tmp/dg_client_XXXXXX";
  int fd = mkstemp(path);
  const uint8_t bytes[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 1, 2, 255};
  CHECK(fd >= 0 && write(fd, bytes, sizeof bytes) == (ssize_t)sizeof bytes);
  close(fd);
  char arg[64];
  snprintf(arg, sizeof arg, "image=@%s", path);
  json_t *o = parse1(arg);
  CHECK(o != NULL);
  if (o) {
    const char *b = json_string_value(json_object_get(o, "image"));
    uint8_t *d;
    size_t n;
    CHECK(b && dg_base64_decode(b, strlen(b), &d, &n) == DG_STATUS_OK && n == sizeof bytes &&
          memcmp(d, bytes, n) == 0);
    if (b) free(d);
    json_decref(o);
  }
  unlink(path);
  /* later keys replace earlier ones */
  o = json_object();
  char err[256];
  CHECK(dg_client_parse_param("a=1", o, err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_client_parse_param("a=2", o, err, sizeof err) == DG_STATUS_OK);
  CHECK(json_integer_value(json_object_get(o, "a")) == 2);
  json_decref(o);

  /* output names */
  CHECK(path_is("out.webp", "R1", 0, 1, "webp", "out.webp"));
  CHECK(path_is("out.webp", "R1", 1, 3, "webp", "out-2.webp"));
  CHECK(path_is("dir.v2/out", "R1", 0, 2, "png", "dir.v2/out-1"));
  CHECK(path_is("img_{n}.{ext}", "R1", 2, 3, "jpg", "img_3.jpg"));
  CHECK(path_is("{id}/{n}.png", "abc", 0, 1, "png", "abc/1.png"));
  CHECK(path_is(NULL, "abc", 0, 1, "png", "abc.png"));
  CHECK(path_is(NULL, "abc", 1, 2, "png", "abc-2.png"));
  char small[6];
  CHECK(dg_client_output_path("abcdefgh", "x", 0, 1, "png", small, sizeof small) == DG_STATUS_ERR_LIMIT);
  CHECK(dg_client_output_path("abcd", "x", 0, 1, "png", small, sizeof small) == DG_STATUS_OK);

  /* extra headers */
  dg_client *hc = dg_client_new("http://h:1", NULL);
  CHECK(dg_client_add_header(hc, "Idempotency-Key: abc") == DG_STATUS_OK);
  CHECK(dg_client_add_header(hc, "no colon") == DG_STATUS_ERR_INVALID);
  CHECK(dg_client_add_header(hc, ": empty name") == DG_STATUS_ERR_INVALID);
  CHECK(dg_client_add_header(hc, "Bad Name: x") == DG_STATUS_ERR_INVALID);
  CHECK(dg_client_add_header(hc, "X-A: b\r\nX-Injected: 1") == DG_STATUS_ERR_INVALID);
  dg_client_free(hc);

  /* base URL normalisation and env defaults */
  dg_client *c = dg_client_new("http://h:1/v1/", "k");
  CHECK(c && strcmp(dg_client_base_url(c), "http://h:1") == 0);
  dg_client_free(c);
  setenv("DAGUERRE_URL", "http://env-host:9/v2", 1);
  c = dg_client_new(NULL, NULL);
  CHECK(c && strcmp(dg_client_base_url(c), "http://env-host:9") == 0);
  dg_client_free(c);
  unsetenv("DAGUERRE_URL");
  c = dg_client_new(NULL, NULL);
  CHECK(c && strcmp(dg_client_base_url(c), "http://127.0.0.1:8080") == 0);
  dg_client_free(c);

  /* outputs of v1 bodies: raw image, {"image"}, {"images"} */
  c = dg_client_new("http://127.0.0.1:1", NULL);
  dg_client_response r;
  memset(&r, 0, sizeof r);
  r.http_status = 200;
  r.body = malloc(16);
  memcpy(r.body, "RIFF\x10\0\0\0WEBPVP8 ", 16);
  r.body_n = 16;
  dg_client_media *m;
  size_t n;
  CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_OK && n == 1 &&
        strcmp(m[0].ext, "webp") == 0 && m[0].n == 16);
  dg_client_media_free(m, n);
  free(r.body);
  r.body = NULL;
  char *b64png = dg_base64_encode(bytes, sizeof bytes, NULL);
  r.json = json_pack("{s:[s,s]}", "images", b64png, b64png);
  CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_OK && n == 2 &&
        strcmp(m[1].ext, "png") == 0 && m[1].n == sizeof bytes);
  dg_client_media_free(m, n);
  json_decref(r.json);
  r.json = json_pack("{s:s}", "output", "!!not base64!!");
  CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  json_decref(r.json);
  r.json = json_pack("{s:n}", "output");
  CHECK(dg_client_outputs(c, &r, &m, &n, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  json_decref(r.json);
  free(b64png);

  /* transport error: nothing listens on port 1 */
  char *id = NULL;
  json_t *params = json_object();
  CHECK(dg_client_submit(c, "test-echo", params, &id, &r, err, sizeof err) == DG_STATUS_ERR_NETWORK);
  CHECK(id == NULL && strstr(err, "127.0.0.1") != NULL);
  dg_client_response_clear(&r);
  CHECK(dg_client_status(c, "../etc", &r, err, sizeof err) == DG_STATUS_ERR_INVALID);
  dg_client_response_clear(&r);
  CHECK(dg_client_submit(c, "a/b", params, &id, &r, err, sizeof err) == DG_STATUS_ERR_INVALID);
  dg_client_response_clear(&r);
  json_decref(params);
  dg_client_free(c);
  test_against_fake_server();
  T_DONE();
}
