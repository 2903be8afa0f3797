/* CLIP tokenizer: the 20 golden prompts of tests/data/sd15-tiny/goldens/tokenizer.json
 * (input_ids, untruncated BPE ids and their count must match exactly), malformed
 * tokenizer files, and hostile text. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/tokenizer.h"
#include "t.h"

static void test_goldens(dg_tokenizer *tok) {
  json_error_t jerr;
  json_t *root = json_load_file(t_data("sd15-tiny/goldens/tokenizer.json"), 0, &jerr);
  CHECK(root != NULL);
  json_t *cases = json_object_get(root, "cases");
  CHECK(json_array_size(cases) == 20);
  size_t i;
  json_t *c;
  int exact = 0;
  json_array_foreach(cases, i, c) {
    const char *prompt = json_string_value(json_object_get(c, "prompt"));
    json_t *want = json_object_get(c, "input_ids");
    json_t *want_bpe = json_object_get(c, "bpe_ids_untruncated");
    size_t want_n = (size_t)json_integer_value(json_object_get(c, "n_bpe"));
    int64_t ids[DG_TOKENIZER_CONTEXT];
    size_t n_bpe = 0;
    dg_status rc = dg_tokenizer_encode_n(tok, prompt, ids, &n_bpe);
    CHECK(rc == DG_STATUS_OK);
    int ok = json_array_size(want) == DG_TOKENIZER_CONTEXT;
    for (size_t k = 0; ok && k < DG_TOKENIZER_CONTEXT; k++)
      ok = ids[k] == json_integer_value(json_array_get(want, k));
    CHECK_MSG(ok, "case %zu '%s': input_ids differ", i, prompt);
    CHECK_MSG(n_bpe == want_n, "case %zu: n_bpe %zu vs %zu", i, n_bpe, want_n);
    size_t n = 0;
    int64_t *bpe = malloc((want_n + 1) * sizeof *bpe);
    rc = dg_tokenizer_bpe(tok, prompt, bpe, want_n + 1, &n);
    int okb = rc == DG_STATUS_OK && n == want_n && json_array_size(want_bpe) == want_n;
    for (size_t k = 0; okb && k < n; k++) okb = bpe[k] == json_integer_value(json_array_get(want_bpe, k));
    if (!okb) {
      fprintf(stderr, "case %zu '%s': got", i, prompt);
      for (size_t k = 0; k < n && k < want_n + 1; k++)
        fprintf(stderr, " %lld(%s)", (long long)bpe[k], dg_tokenizer_token(tok, bpe[k]));
      fprintf(stderr, "\n");
    }
    CHECK_MSG(okb, "case %zu: bpe ids differ", i);
    /* The token strings match the golden bpe_tokens too. */
    json_t *toks = json_object_get(c, "bpe_tokens");
    int okt = json_array_size(toks) == n;
    for (size_t k = 0; okt && k < n; k++) {
      const char *s = dg_tokenizer_token(tok, bpe[k]);
      okt = s && strcmp(s, json_string_value(json_array_get(toks, k))) == 0;
    }
    CHECK(okt);
    exact += ok && okb && okt && n_bpe == want_n;
    free(bpe);
  }
  printf("tokenizer goldens: %d / %zu prompts exact\n", exact, json_array_size(cases));
  json_decref(root);
}

static void test_api(dg_tokenizer *tok) {
  CHECK(dg_tokenizer_bos(tok) == 49406);
  CHECK(dg_tokenizer_eos(tok) == 49407);
  CHECK(dg_tokenizer_pad(tok) == 49407);
  CHECK(dg_tokenizer_vocab_size(tok) == 49408);
  CHECK(strcmp(dg_tokenizer_token(tok, 49406), "<|startoftext|>") == 0);
  CHECK(dg_tokenizer_token(tok, 49408) == NULL);
  CHECK(dg_tokenizer_token(tok, -1) == NULL);
  /* Truncated buffer: total count still reported. */
  int64_t few[2];
  size_t n = 0;
  CHECK(dg_tokenizer_bpe(tok, "a photograph of an astronaut riding a horse", few, 2, &n) == DG_STATUS_OK);
  CHECK(n == 8 && few[0] == 320);
  CHECK(dg_tokenizer_bpe(tok, "a b c", NULL, 0, &n) == DG_STATUS_OK && n == 3);
  /* Special tokens in the text map to their ids. */
  int64_t ids[DG_TOKENIZER_CONTEXT];
  CHECK(dg_tokenizer_bpe(tok, "a<|endoftext|>b", ids, 77, &n) == DG_STATUS_OK);
  CHECK(n == 3 && ids[1] == 49407);
  CHECK(dg_tokenizer_encode(tok, NULL, ids) == DG_STATUS_ERR_INVALID);
  CHECK(dg_tokenizer_encode(NULL, "x", ids) == DG_STATUS_ERR_INVALID);
}

static void test_hostile(dg_tokenizer *tok) {
  int64_t a[DG_TOKENIZER_CONTEXT], b[DG_TOKENIZER_CONTEXT];
  /* Each invalid byte becomes U+FFFD. */
  CHECK(dg_tokenizer_encode(tok, "x\xff y", a) == DG_STATUS_OK);
  CHECK(dg_tokenizer_encode(tok, "x\xef\xbf\xbd y", b) == DG_STATUS_OK);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(dg_tokenizer_encode(tok, "\xc3", a) == DG_STATUS_OK);          /* truncated */
  CHECK(dg_tokenizer_encode(tok, "\xef\xbf\xbd", b) == DG_STATUS_OK);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(dg_tokenizer_encode(tok, "\xc0\xaf", a) == DG_STATUS_OK);      /* overlong: 2 x FFFD */
  CHECK(dg_tokenizer_encode(tok, "\xef\xbf\xbd\xef\xbf\xbd", b) == DG_STATUS_OK);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(dg_tokenizer_encode(tok, "\xed\xa0\x80", a) == DG_STATUS_OK);  /* surrogate */
  CHECK(dg_tokenizer_encode(tok, "\xf4\x90\x80\x80", a) == DG_STATUS_OK); /* > U+10FFFF */
  CHECK(dg_tokenizer_encode(tok, "\xf0\x9f\x98", a) == DG_STATUS_OK);
  /* Whitespace only -> empty prompt. */
  CHECK(dg_tokenizer_encode(tok, " \t\n\xc2\xa0\xe3\x80\x80 ", a) == DG_STATUS_OK);
  CHECK(dg_tokenizer_encode(tok, "", b) == DG_STATUS_OK);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(a[0] == 49406 && a[1] == 49407 && a[76] == 49407);
  /* A very long word is cut into pieces, and takes bounded time. */
  size_t big = 200000;
  char *s = malloc(big + 1);
  for (size_t i = 0; i < big; i++) s[i] = (char)('a' + (i * 7) % 26);
  s[big] = 0;
  size_t n = 0;
  CHECK(dg_tokenizer_bpe(tok, s, NULL, 0, &n) == DG_STATUS_OK);
  CHECK(n > big / 64 && n < big);
  CHECK(dg_tokenizer_encode(tok, s, a) == DG_STATUS_OK);
  CHECK(a[0] == 49406 && a[76] == 49407);
  /* Random bytes never crash. */
  uint32_t x = 12345;
  for (int round = 0; round < 200; round++) {
    size_t len = (size_t)(x % 300);
    for (size_t i = 0; i < len; i++) {
      x = x * 1103515245u + 12345u;
      s[i] = (char)((x >> 16) & 0xff);
      if (s[i] == 0) s[i] = 1;
    }
    s[len] = 0;
    CHECK(dg_tokenizer_encode(tok, s, a) == DG_STATUS_OK);
  }
  free(s);
  /* Over the limit. */
  char *huge = malloc(DG_TOKENIZER_MAX_TEXT + 2);
  memset(huge, 'a', DG_TOKENIZER_MAX_TEXT + 1);
  huge[DG_TOKENIZER_MAX_TEXT + 1] = 0;
  CHECK(dg_tokenizer_encode(tok, huge, a) == DG_STATUS_ERR_LIMIT);
  free(huge);
}

/* The fast BPE equals the reference loop on random word soups. */
static void test_ref_bpe(const dg_tokenizer *tok) {
  static const char *const alpha[] = {"a", "b", "e", "r", "s", "t", "in", "er", "the", "ing", "\xc3\xa9",
                                      "\xc3\x9f", "\xd0\xb6", "\xf0\x9f\x98\x80", "1", " ", "'", "-",
                                      "\xe3\x81\xae", "o", "n", "l"};
  static char s[1200];
  static int64_t a[4096], b[4096];
  uint32_t x = 7;
  int same = 1;
  for (int round = 0; round < 500; round++) {
    size_t len = 0, want = 1 + x % 1000;
    while (len < want) {
      x = x * 1103515245u + 12345u;
      const char *p = alpha[(x >> 16) % (sizeof alpha / sizeof alpha[0])];
      size_t l = strlen(p);
      memcpy(s + len, p, l);
      len += l;
    }
    s[len] = 0;
    size_t na = 0, nb = 0;
    CHECK(dg_tokenizer_bpe(tok, s, a, 4096, &na) == DG_STATUS_OK);
    CHECK(dg__tokenizer_bpe_ref(tok, s, b, 4096, &nb) == DG_STATUS_OK);
    same &= na == nb && na <= 4096 && memcmp(a, b, na * sizeof a[0]) == 0;
  }
  CHECK(same);
}

/* encode is const and thread-safe: 4 threads agree with the single-threaded ids. */
typedef struct thr_arg {
  const dg_tokenizer *tok;
  int ok;
} thr_arg;

static const char *const thr_prompts[] = {
    "a photograph of an astronaut riding a horse", "ß straße ǅ İstanbul ΣΊΣΥΦΟΣ",
    "Привет мир, красивый пейзаж", "emoji 😀🎨🚀 and symbols ©®™ ± × ÷", "x\xff\xfe y"};

static void *thr_main(void *p) {
  thr_arg *a = p;
  int64_t ref[5][DG_TOKENIZER_CONTEXT], ids[DG_TOKENIZER_CONTEXT];
  a->ok = 1;
  for (int k = 0; k < 5; k++) a->ok &= dg_tokenizer_encode(a->tok, thr_prompts[k], ref[k]) == DG_STATUS_OK;
  for (int r = 0; r < 200; r++) {
    int k = r % 5;
    a->ok &= dg_tokenizer_encode(a->tok, thr_prompts[k], ids) == DG_STATUS_OK;
    a->ok &= memcmp(ids, ref[k], sizeof ids) == 0;
  }
  return NULL;
}

static void test_threads(const dg_tokenizer *tok) {
  pthread_t th[4];
  thr_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i].tok = tok;
    args[i].ok = 0;
    CHECK(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(args[i].ok);
  }
}

static void write_file(const char *path, const char *content) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(content, f);
    fclose(f);
  }
}

static void test_malformed(void) {
  char dir[] = "/tmp/dg_test_tok_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char v[256], m[256], sp[256];
  snprintf(v, sizeof v, "%s/vocab.json", dir);
  snprintf(m, sizeof m, "%s/merges.txt", dir);
  snprintf(sp, sizeof sp, "%s/special_tokens_map.json", dir);
  char err[512] = "";
  dg_tokenizer *tok = (dg_tokenizer *)&err;

  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_IO);
  CHECK(tok == NULL);
  CHECK(strstr(err, "vocab.json") != NULL);
  CHECK(dg_tokenizer_open("/nonexistent/dir", &tok, err, sizeof err) == DG_STATUS_ERR_IO);

  write_file(v, "{\"a\": 0, ");
  write_file(m, "#version: 0.2\na b\n");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  write_file(v, "[1, 2]");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  write_file(v, "{\"a\": \"0\"}");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  write_file(v, "{\"a\": -5}");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  write_file(v, "{\"a\": 0, \"a\": 1}");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  /* No special tokens. */
  write_file(v, "{\"a\": 0, \"b\": 1, \"ab</w>\": 2, \"b</w>\": 3}");
  err[0] = 0;
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(strstr(err, "startoftext") != NULL);
  /* A tiny valid tokenizer, then bad merges lines. */
  write_file(v, "{\"a\": 0, \"b\": 1, \"ab</w>\": 2, \"b</w>\": 3, \"a</w>\": 4, \"!\": 5,"
                " \"<|startoftext|>\": 6, \"<|endoftext|>\": 7}");
  write_file(m, "#version: 0.2\na b</w>\n");
  write_file(sp, "{\"pad_token\": {\"content\": \"!\"}}");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_OK);
  if (tok) {
    int64_t ids[DG_TOKENIZER_CONTEXT];
    CHECK(dg_tokenizer_encode(tok, "AB ba", ids) == DG_STATUS_OK);
    /* "ab" -> a + b</w> merged -> "ab</w>" (2); "ba" -> b a</w>; unknown chars -> eos */
    CHECK(ids[0] == 6 && ids[1] == 2 && ids[2] == 1 && ids[3] == 4 && ids[4] == 7);
    CHECK(ids[5] == 5 && ids[76] == 5); /* pad "!" from special_tokens_map.json */
    CHECK(dg_tokenizer_encode(tok, "z", ids) == DG_STATUS_OK && ids[1] == 7); /* unk */
    dg_tokenizer_close(tok);
  }
  /* Explicit paths: pad = eos. */
  CHECK(dg_tokenizer_open_files(v, m, &tok, err, sizeof err) == DG_STATUS_OK);
  if (tok) {
    CHECK(dg_tokenizer_pad(tok) == 7);
    dg_tokenizer_close(tok);
  }
  write_file(m, "#version: 0.2\na b c\n");
  err[0] = 0;
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(strstr(err, "line 2") != NULL);
  write_file(m, "#version: 0.2\nab\n");
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  remove(m);
  CHECK(dg_tokenizer_open(dir, &tok, err, sizeof err) == DG_STATUS_ERR_IO);
  CHECK(strstr(err, "merges.txt") != NULL);
  remove(v);
  remove(sp);
  rmdir(dir);
}

int main(void) {
  char err[512] = "";
  dg_tokenizer *tok = NULL;
  dg_status rc = dg_tokenizer_open(t_data("sd15-tiny/diffusers/tokenizer"), &tok, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  if (tok) {
    test_goldens(tok);
    test_api(tok);
    test_hostile(tok);
    test_threads(tok);
    test_ref_bpe(tok);
    dg_tokenizer_close(tok);
  }
  test_malformed();
  T_DONE();
}
