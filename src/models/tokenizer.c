/* CLIP BPE tokenizer (see tokenizer.h for the exact semantics).
 *
 * Data structures:
 *  - the vocabulary: string -> id, an open-addressing hash over a string pool,
 *    plus id -> string;
 *  - the merges: (left id, right id) -> (rank, merged id), a hash keyed by the
 *    pair of ids.  A merge whose two parts or whose result is not in the
 *    vocabulary is ignored (HF would fail on it when it is used).
 *  - BPE runs on ids: each byte starts as the id of its byte-to-unicode
 *    character (the last one as "<char></w>"), then the adjacent pair of lowest
 *    rank is merged everywhere (left to right) until no pair has a rank.
 *
 * HF CLIPTokenizer reads merges.txt as lines[1 : 48895]: the first line (the
 * "#version" header) is always skipped and at most 48894 merges are used. */
#include "models/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <locale.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>
#include "base/file.h"
#include "base/status.h"

#define TK_MAX_FILE (64u * 1024 * 1024)
#define TK_MAX_MERGES (49152 - 256 - 2)
#define TK_MAX_ID 10000000

/* ---- string -> id map ---------------------------------------------------- */

typedef struct tk_entry {
  uint32_t off, len; /* into the pool */
  int32_t id;
} tk_entry;

typedef struct tk_pair {
  uint64_t key; /* (left << 32) | right, both + 1 so that 0 means empty */
  int32_t rank, merged;
} tk_pair;

struct dg_tokenizer {
  char *pool;
  size_t pool_len;
  tk_entry *vocab;
  size_t nvocab;
  uint32_t *vslots; /* entry index + 1 */
  size_t nvslots;
  int64_t *id_off;  /* [max_id + 1]: pool offset of id's string, -1 if none */
  size_t nids;
  tk_pair *pairs;   /* open addressing */
  size_t npslots;
  int32_t byte_id[256], byte_end_id[256]; /* -1 if absent */
  int64_t bos, eos, pad;
  pcre2_code *re;
  locale_t loc;     /* C.UTF-8 for towlower; (locale_t)0 if unavailable */
};

static uint64_t tk_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static uint64_t tk_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static int32_t tk_vocab_find(const dg_tokenizer *t, const char *s, size_t n) {
  if (!t->nvslots) return -1;
  size_t m = t->nvslots - 1, j = (size_t)tk_hash(s, n) & m;
  while (t->vslots[j]) {
    const tk_entry *e = &t->vocab[t->vslots[j] - 1];
    if (e->len == n && memcmp(t->pool + e->off, s, n) == 0) return e->id;
    j = (j + 1) & m;
  }
  return -1;
}

static const tk_pair *tk_pair_find(const dg_tokenizer *t, int32_t a, int32_t b) {
  if (!t->npslots || a < 0 || b < 0) return NULL;
  uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
  size_t m = t->npslots - 1, j = (size_t)tk_mix(key) & m;
  while (t->pairs[j].key) {
    if (t->pairs[j].key == key) return &t->pairs[j];
    j = (j + 1) & m;
  }
  return NULL;
}

/* ---- byte <-> unicode (GPT-2 / CLIP table) -------------------------------- */

static void tk_byte_table(uint32_t cp[256]) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
  }
}

static size_t tk_utf8_put(uint32_t c, char *out) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* Decode one code point at s[0..n); invalid -> U+FFFD consuming one byte. */
static uint32_t tk_utf8_get(const unsigned char *s, size_t n, size_t *used) {
  unsigned char c = s[0];
  *used = 1;
  if (c < 0x80) return c;
  int len;
  uint32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    return 0xFFFD;
  }
  if ((size_t)len > n) return 0xFFFD;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
  *used = (size_t)len;
  return cp;
}

/* ---- Python str semantics: isspace, lower --------------------------------- */

static int tk_is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

static uint32_t tk_towlower(const dg_tokenizer *t, uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (t->loc) return (uint32_t)towlower_l((wint_t)c, t->loc);
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32; /* Latin-1 only */
  return c;
}

static uint32_t tk_towupper(const dg_tokenizer *t, uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (t->loc) return (uint32_t)towupper_l((wint_t)c, t->loc);
  return c;
}

static int tk_is_cased(const dg_tokenizer *t, uint32_t c) {
  if (tk_towlower(t, c) != c || tk_towupper(t, c) != c) return 1;
  if (t->loc) return iswlower_l((wint_t)c, t->loc) || iswupper_l((wint_t)c, t->loc);
  return 0;
}

/* Case-ignorable (Mn/Me/Cf/Lm/Sk and the word-break mid-letter set), the
 * common ranges: enough for the final-sigma rule. */
static int tk_is_case_ignorable(uint32_t c) {
  static const uint32_t r[][2] = {
      {0x27, 0x27},     {0x2E, 0x2E},     {0x3A, 0x3A},     {0x5E, 0x5E},     {0x60, 0x60},
      {0xA8, 0xA8},     {0xAD, 0xAD},     {0xAF, 0xAF},     {0xB4, 0xB4},     {0xB7, 0xB8},
      {0x2B0, 0x36F},   {0x374, 0x375},   {0x37A, 0x37A},   {0x384, 0x385},   {0x387, 0x387},
      {0x483, 0x489},   {0x591, 0x5BD},   {0x5BF, 0x5BF},   {0x5C1, 0x5C2},   {0x5C4, 0x5C5},
      {0x5C7, 0x5C7},   {0x5F4, 0x5F4},   {0x610, 0x61A},   {0x64B, 0x65F},   {0x1AB0, 0x1AFF},
      {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x2018, 0x2019}, {0x2024, 0x2024}, {0x2027, 0x2027},
      {0x202A, 0x202E}, {0x2060, 0x2064}, {0x20D0, 0x20F0}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
      {0xFE13, 0xFE13}, {0xFE52, 0xFE52}, {0xFE55, 0xFE55}, {0xFEFF, 0xFEFF}, {0xFF07, 0xFF07},
      {0xFF0E, 0xFF0E}, {0xFF1A, 0xFF1A}, {0xFF3E, 0xFF3E}, {0xFF40, 0xFF40}, {0xE0001, 0xE007F},
      {0xE0100, 0xE01EF},
  };
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    if (c >= r[i][0] && c <= r[i][1]) return 1;
  return 0;
}

/* Python's handle_capital_sigma: final form when preceded by a cased letter
 * and not followed by one (case-ignorable characters skipped both ways). */
static uint32_t tk_sigma(const dg_tokenizer *t, const uint32_t *s, size_t n, size_t i) {
  size_t j = i;
  uint32_t c = 0;
  int found = 0;
  while (j > 0) {
    c = s[--j];
    if (!tk_is_case_ignorable(c)) {
      found = 1;
      break;
    }
  }
  int final = found && tk_is_cased(t, c);
  if (final && i + 1 < n) {
    for (j = i + 1; j < n; j++) {
      c = s[j];
      if (!tk_is_case_ignorable(c)) break;
    }
    final = j == n || !tk_is_cased(t, c);
  }
  return final ? 0x3C2 : 0x3C3;
}

/* ---- loading ----------------------------------------------------------- */

static dg_status tk_load_vocab(dg_tokenizer *t, const char *path, char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  dg_status rc = dg_read_file(path, TK_MAX_FILE, &text, &len, err, errlen);
  if (rc) return rc;
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!root || !json_is_object(root)) {
    dg_set_error(err, errlen, "tokenizer: %s is not a JSON object%s%s", path, root ? "" : ": ",
           root ? "" : jerr.text);
    json_decref(root);
    return DG_STATUS_ERR_FORMAT;
  }
  size_t n = json_object_size(root), pool = 0, maxid = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > TK_MAX_ID) {
      dg_set_error(err, errlen, "tokenizer: %s: id of '%.40s' is not an integer in [0, %d]", path, k,
             TK_MAX_ID);
      json_decref(root);
      return DG_STATUS_ERR_FORMAT;
    }
    pool += strlen(k) + 1;
    if ((size_t)json_integer_value(v) > maxid) maxid = (size_t)json_integer_value(v);
  }
  if (n == 0 || pool > UINT32_MAX) {
    dg_set_error(err, errlen, "tokenizer: %s: empty or too large vocabulary", path);
    json_decref(root);
    return DG_STATUS_ERR_FORMAT;
  }
  t->pool = malloc(pool);
  t->vocab = malloc(n * sizeof *t->vocab);
  t->nvslots = 16;
  while (t->nvslots < 2 * n) t->nvslots *= 2;
  t->vslots = calloc(t->nvslots, sizeof *t->vslots);
  t->nids = maxid + 1;
  t->id_off = malloc(t->nids * sizeof *t->id_off);
  if (!t->pool || !t->vocab || !t->vslots || !t->id_off) {
    json_decref(root);
    dg_set_error(err, errlen, "tokenizer: out of memory");
    return DG_STATUS_ERR_NOMEM;
  }
  for (size_t i = 0; i < t->nids; i++) t->id_off[i] = -1;
  json_object_foreach(root, k, v) {
    size_t kl = strlen(k);
    tk_entry *e = &t->vocab[t->nvocab];
    e->off = (uint32_t)t->pool_len;
    e->len = (uint32_t)kl;
    e->id = (int32_t)json_integer_value(v);
    memcpy(t->pool + t->pool_len, k, kl + 1);
    t->pool_len += kl + 1;
    size_t m = t->nvslots - 1, j = (size_t)tk_hash(k, kl) & m;
    while (t->vslots[j]) j = (j + 1) & m;
    t->vslots[j] = (uint32_t)(++t->nvocab);
    if (t->id_off[e->id] < 0) t->id_off[e->id] = e->off;
  }
  json_decref(root);
  return DG_STATUS_OK;
}

static dg_status tk_load_merges(dg_tokenizer *t, const char *path, char *err, size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  dg_status rc = dg_read_file(path, TK_MAX_FILE, &text, &len, err, errlen);
  if (rc) return rc;
  if (memchr(text, 0, len)) {
    free(text);
    dg_set_error(err, errlen, "tokenizer: %s contains a NUL byte", path);
    return DG_STATUS_ERR_FORMAT;
  }
  t->npslots = 16;
  while (t->npslots < 2 * TK_MAX_MERGES) t->npslots *= 2;
  t->pairs = calloc(t->npslots, sizeof *t->pairs);
  char *scratch = malloc(len + 2);
  if (!t->pairs || !scratch) {
    free(text);
    free(scratch);
    dg_set_error(err, errlen, "tokenizer: out of memory");
    return DG_STATUS_ERR_NOMEM;
  }
  /* Python: text.strip().split("\n")[1:48895], each line .split(). */
  char *p = text, *end = text + len;
  while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) p++;
  while (end > p && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r'))) end--;
  *end = 0;
  int line = 0, rank = 0;
  rc = DG_STATUS_OK;
  while (p < end && rank < TK_MAX_MERGES) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *le = nl ? nl : end;
    if (line++ == 0) { /* header ("#version: 0.2") */
      p = le + 1;
      continue;
    }
    /* split on ASCII whitespace into exactly two parts */
    char *parts[3];
    size_t plen[3];
    int np = 0;
    char *q = p;
    while (q < le) {
      while (q < le && (*q == ' ' || (*q >= '\t' && *q <= '\r'))) q++;
      if (q >= le) break;
      char *s = q;
      while (q < le && !(*q == ' ' || (*q >= '\t' && *q <= '\r'))) q++;
      if (np < 3) {
        parts[np] = s;
        plen[np] = (size_t)(q - s);
      }
      np++;
    }
    if (np != 2) {
      dg_set_error(err, errlen, "tokenizer: %s line %d: expected two symbols, got %d", path, line, np);
      rc = DG_STATUS_ERR_FORMAT;
      break;
    }
    int32_t a = tk_vocab_find(t, parts[0], plen[0]);
    int32_t b = tk_vocab_find(t, parts[1], plen[1]);
    memcpy(scratch, parts[0], plen[0]);
    memcpy(scratch + plen[0], parts[1], plen[1]);
    int32_t ab = tk_vocab_find(t, scratch, plen[0] + plen[1]);
    if (a >= 0 && b >= 0 && ab >= 0 && !tk_pair_find(t, a, b)) {
      uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
      size_t m = t->npslots - 1, j = (size_t)tk_mix(key) & m;
      while (t->pairs[j].key) j = (j + 1) & m;
      t->pairs[j].key = key;
      t->pairs[j].rank = rank;
      t->pairs[j].merged = ab;
    }
    rank++;
    p = le + 1;
  }
  free(scratch);
  free(text);
  return rc;
}

static const char *tk_pattern =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\s\\p{L}\\p{N}]+";

dg_status dg_tokenizer_open_files(const char *vocab_json, const char *merges_txt,
                                  dg_tokenizer **out, char *err, size_t errlen) {
  if (!out || !vocab_json || !merges_txt) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  dg_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return DG_STATUS_ERR_NOMEM;
  dg_status rc = tk_load_vocab(t, vocab_json, err, errlen);
  if (!rc) rc = tk_load_merges(t, merges_txt, err, errlen);
  if (!rc) {
    t->bos = tk_vocab_find(t, "<|startoftext|>", 15);
    t->eos = tk_vocab_find(t, "<|endoftext|>", 13);
    t->pad = t->eos;
    if (t->bos < 0 || t->eos < 0) {
      dg_set_error(err, errlen, "tokenizer: %s lacks <|startoftext|> or <|endoftext|>", vocab_json);
      rc = DG_STATUS_ERR_FORMAT;
    }
  }
  if (!rc) {
    uint32_t cp[256];
    tk_byte_table(cp);
    for (int b = 0; b < 256; b++) {
      char s[16];
      size_t n = tk_utf8_put(cp[b], s);
      t->byte_id[b] = tk_vocab_find(t, s, n);
      memcpy(s + n, "</w>", 4);
      t->byte_end_id[b] = tk_vocab_find(t, s, n + 4);
    }
    int ecode;
    PCRE2_SIZE eoff;
    t->re = pcre2_compile((PCRE2_SPTR)tk_pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &ecode, &eoff, NULL);
    if (!t->re) {
      dg_set_error(err, errlen, "tokenizer: cannot compile the pre-tokenizer regex (%d)", ecode);
      rc = DG_STATUS_ERR_INTERNAL;
    }
  }
  if (!rc) {
    t->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!t->loc) t->loc = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
    if (!t->loc) t->loc = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
  }
  if (rc) {
    dg_tokenizer_close(t);
    return rc;
  }
  *out = t;
  return DG_STATUS_OK;
}

/* pad_token of special_tokens_map.json: a string or {"content": string}. */
static void tk_read_pad(dg_tokenizer *t, const char *dir) {
  size_t dl = strlen(dir);
  char *path = malloc(dl + 32);
  if (!path) return;
  snprintf(path, dl + 32, "%s/special_tokens_map.json", dir);
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  free(path);
  if (!root) return;
  json_t *pad = json_object_get(root, "pad_token");
  if (json_is_object(pad)) pad = json_object_get(pad, "content");
  if (json_is_string(pad)) {
    int32_t id = tk_vocab_find(t, json_string_value(pad), json_string_length(pad));
    if (id >= 0) t->pad = id;
  }
  json_decref(root);
}

dg_status dg_tokenizer_open(const char *dir, dg_tokenizer **out, char *err, size_t errlen) {
  if (!dir || !out) return DG_STATUS_ERR_INVALID;
  size_t dl = strlen(dir);
  char *v = malloc(dl + 16), *m = malloc(dl + 16);
  if (!v || !m) {
    free(v);
    free(m);
    return DG_STATUS_ERR_NOMEM;
  }
  snprintf(v, dl + 16, "%s/vocab.json", dir);
  snprintf(m, dl + 16, "%s/merges.txt", dir);
  dg_status rc = dg_tokenizer_open_files(v, m, out, err, errlen);
  free(v);
  free(m);
  if (!rc) tk_read_pad(*out, dir);
  return rc;
}

void dg_tokenizer_close(dg_tokenizer *t) {
  if (!t) return;
  free(t->pool);
  free(t->vocab);
  free(t->vslots);
  free(t->id_off);
  free(t->pairs);
  if (t->re) pcre2_code_free(t->re);
  if (t->loc) freelocale(t->loc);
  free(t);
}

int64_t dg_tokenizer_bos(const dg_tokenizer *t) { return t ? t->bos : -1; }
int64_t dg_tokenizer_eos(const dg_tokenizer *t) { return t ? t->eos : -1; }
int64_t dg_tokenizer_pad(const dg_tokenizer *t) { return t ? t->pad : -1; }
size_t dg_tokenizer_vocab_size(const dg_tokenizer *t) { return t ? t->nvocab : 0; }

const char *dg_tokenizer_token(const dg_tokenizer *t, int64_t id) {
  if (!t || id < 0 || (size_t)id >= t->nids || t->id_off[id] < 0) return NULL;
  return t->pool + t->id_off[id];
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct tk_scratch {
  int32_t sym[DG_TOKENIZER_MAX_WORD], rank[DG_TOKENIZER_MAX_WORD];
  unsigned char fresh[DG_TOKENIZER_MAX_WORD];
} tk_scratch;

typedef struct tk_out {
  int64_t *ids;
  size_t cap, n;
} tk_out;

static void tk_emit(tk_out *o, int64_t id) {
  if (o->n < o->cap) o->ids[o->n] = id;
  o->n++;
}

static int32_t tk_rank(const dg_tokenizer *t, int32_t a, int32_t b) {
  const tk_pair *p = tk_pair_find(t, a, b);
  return p ? p->rank : INT32_MAX;
}

/* BPE of one word (raw bytes, len <= DG_TOKENIZER_MAX_WORD).
 * rank[i] caches the merge rank of the pair (sym[i], sym[i+1]) and is only
 * looked up again next to symbols a merge created, so a step costs one scan
 * of an int array instead of n hash lookups. */
static void tk_bpe_word(const dg_tokenizer *t, const unsigned char *w, size_t len, tk_scratch *sc,
                        tk_out *o) {
  int32_t *sym = sc->sym, *rank = sc->rank;
  unsigned char *fresh = sc->fresh;
  size_t n = len;
  for (size_t i = 0; i < n; i++) sym[i] = i + 1 < n ? t->byte_id[w[i]] : t->byte_end_id[w[i]];
  for (size_t i = 0; i + 1 < n; i++) rank[i] = tk_rank(t, sym[i], sym[i + 1]);
  while (n > 1) {
    size_t bi = 0;
    for (size_t i = 1; i + 1 < n; i++)
      if (rank[i] < rank[bi]) bi = i;
    if (rank[bi] == INT32_MAX) break;
    const int32_t first = sym[bi], second = sym[bi + 1];
    const tk_pair *bp = tk_pair_find(t, first, second);
    if (!bp) break; /* cannot happen: rank[] only holds ranks of known pairs */
    const int32_t merged = bp->merged;
    /* Merge every occurrence left to right (as HF does, by value), keeping
     * the cached rank of untouched pairs: rank[k] <- rank[i] is safe in place
     * because k <= i. */
    size_t k = 0;
    for (size_t i = 0; i < n;) {
      if (i + 1 < n && sym[i] == first && sym[i + 1] == second) {
        sym[k] = merged;
        fresh[k] = 1;
        i += 2;
      } else {
        sym[k] = sym[i];
        fresh[k] = 0;
        rank[k] = i + 1 < n ? rank[i] : INT32_MAX; /* pair (i, i+1), valid if both kept */
        i++;
      }
      k++;
    }
    n = k;
    for (size_t i = 0; i + 1 < n; i++)
      if (fresh[i] || fresh[i + 1]) rank[i] = tk_rank(t, sym[i], sym[i + 1]);
  }
  for (size_t i = 0; i < n; i++) tk_emit(o, sym[i] >= 0 ? sym[i] : t->eos); /* unk = eos */
}

/* Reference BPE (plain, obviously HF's loop): find the lowest-rank adjacent
 * pair by looking every pair up, merge all its occurrences, repeat. */
static void tk_bpe_word_ref(const dg_tokenizer *t, const unsigned char *w, size_t len,
                            tk_scratch *sc, tk_out *o) {
  int32_t *sym = sc->sym;
  size_t n = len;
  for (size_t i = 0; i < n; i++) sym[i] = i + 1 < n ? t->byte_id[w[i]] : t->byte_end_id[w[i]];
  while (n > 1) {
    int32_t best = INT32_MAX, first = -1, second = -1, merged = -1;
    for (size_t i = 0; i + 1 < n; i++) {
      const tk_pair *p = tk_pair_find(t, sym[i], sym[i + 1]);
      if (p && p->rank < best) {
        best = p->rank;
        first = sym[i];
        second = sym[i + 1];
        merged = p->merged;
      }
    }
    if (best == INT32_MAX) break;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
      if (i + 1 < n && sym[i] == first && sym[i + 1] == second) {
        sym[k++] = merged;
        i += 2;
      } else {
        sym[k++] = sym[i++];
      }
    }
    n = k;
  }
  for (size_t i = 0; i < n; i++) tk_emit(o, sym[i] >= 0 ? sym[i] : t->eos);
}

/* Whole pipeline: text -> BPE ids into o. */
static dg_status tk_run(const dg_tokenizer *t, const char *text, tk_out *o, int ref) {
  if (!t || !text) return DG_STATUS_ERR_INVALID;
  size_t len = strlen(text);
  if (len > DG_TOKENIZER_MAX_TEXT) return DG_STATUS_ERR_LIMIT;
  dg_status rc = DG_STATUS_OK;
  uint32_t *cps = malloc((len + 1) * sizeof *cps);
  uint32_t *low = malloc((2 * len + 1) * sizeof *low);
  char *utf = malloc(8 * len + 1);
  tk_scratch *sym = malloc(sizeof *sym);
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
  if (!cps || !low || !utf || !sym || !md) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  /* decode + collapse whitespace runs + strip */
  size_t n = 0;
  int pending_space = 0;
  for (size_t i = 0; i < len;) {
    size_t used;
    uint32_t c = tk_utf8_get((const unsigned char *)text + i, len - i, &used);
    i += used;
    if (tk_is_space(c)) {
      pending_space = n > 0;
      continue;
    }
    if (pending_space) cps[n++] = ' ';
    pending_space = 0;
    cps[n++] = c;
  }
  /* lowercase (Python str.lower) */
  size_t nl = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = cps[i];
    if (c == 0x130) { /* İ -> i + combining dot above */
      low[nl++] = 'i';
      low[nl++] = 0x307;
    } else if (c == 0x3A3) {
      low[nl++] = tk_sigma(t, cps, n, i);
    } else {
      low[nl++] = tk_towlower(t, c);
    }
  }
  size_t ul = 0;
  for (size_t i = 0; i < nl; i++) ul += tk_utf8_put(low[i], utf + ul);
  utf[ul] = 0;

  PCRE2_SIZE off = 0;
  while (off < ul) {
    int r = pcre2_match(t->re, (PCRE2_SPTR)utf, ul, off, PCRE2_NO_UTF_CHECK, md, NULL);
    if (r == PCRE2_ERROR_NOMATCH) break;
    if (r < 0) {
      rc = DG_STATUS_ERR_INTERNAL;
      goto done;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (e <= s) { /* cannot happen with this pattern; never loop forever */
      off = s + 1;
      continue;
    }
    off = e;
    const char *tok = utf + s;
    size_t tl = e - s;
    if (tl == 15 && memcmp(tok, "<|startoftext|>", 15) == 0) {
      tk_emit(o, t->bos);
      continue;
    }
    if (tl == 13 && memcmp(tok, "<|endoftext|>", 13) == 0) {
      tk_emit(o, t->eos);
      continue;
    }
    /* words longer than the cap are cut at UTF-8 boundaries */
    while (tl > 0) {
      size_t piece = tl;
      if (piece > DG_TOKENIZER_MAX_WORD) {
        piece = DG_TOKENIZER_MAX_WORD;
        while (piece > 1 && ((unsigned char)tok[piece] & 0xC0) == 0x80) piece--;
      }
      if (ref)
        tk_bpe_word_ref(t, (const unsigned char *)tok, piece, sym, o);
      else
        tk_bpe_word(t, (const unsigned char *)tok, piece, sym, o);
      tok += piece;
      tl -= piece;
    }
  }
done:
  pcre2_match_data_free(md);
  free(cps);
  free(low);
  free(utf);
  free(sym);
  return rc;
}

dg_status dg_tokenizer_bpe(const dg_tokenizer *t, const char *text, int64_t *ids, size_t cap,
                           size_t *n) {
  tk_out o = {ids, ids ? cap : 0, 0};
  dg_status rc = tk_run(t, text, &o, 0);
  if (n) *n = o.n;
  return rc;
}

dg_status dg__tokenizer_bpe_ref(const dg_tokenizer *t, const char *text, int64_t *ids, size_t cap,
                                size_t *n) {
  tk_out o = {ids, ids ? cap : 0, 0};
  dg_status rc = tk_run(t, text, &o, 1);
  if (n) *n = o.n;
  return rc;
}

dg_status dg_tokenizer_encode_n(const dg_tokenizer *t, const char *text,
                                int64_t ids[DG_TOKENIZER_CONTEXT], size_t *n_bpe) {
  if (!t || !ids) return DG_STATUS_ERR_INVALID;
  int64_t bpe[DG_TOKENIZER_CONTEXT - 2];
  tk_out o = {bpe, DG_TOKENIZER_CONTEXT - 2, 0};
  dg_status rc = tk_run(t, text, &o, 0);
  if (n_bpe) *n_bpe = o.n;
  if (rc) return rc;
  size_t k = 0, m = o.n < DG_TOKENIZER_CONTEXT - 2 ? o.n : DG_TOKENIZER_CONTEXT - 2;
  ids[k++] = t->bos;
  for (size_t i = 0; i < m; i++) ids[k++] = bpe[i];
  ids[k++] = t->eos;
  while (k < DG_TOKENIZER_CONTEXT) ids[k++] = t->pad;
  return DG_STATUS_OK;
}

dg_status dg_tokenizer_encode(const dg_tokenizer *t, const char *text,
                              int64_t ids[DG_TOKENIZER_CONTEXT]) {
  return dg_tokenizer_encode_n(t, text, ids, NULL);
}
