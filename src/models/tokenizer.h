/* The CLIP BPE tokenizer, with the semantics of Hugging Face's CLIPTokenizer as
 * Stable Diffusion pipelines call it (padding to 77, truncation):
 *
 *   text -> collapse every run of whitespace to one space, strip, lowercase
 *   (Python str semantics: Unicode whitespace, full lowercase incl. final
 *   sigma and U+0130) -> split with the CLIP regex (\p{L}/\p{N} via PCRE2)
 *   -> UTF-8 bytes -> byte-to-unicode table -> BPE by merge rank, "</w>" on
 *   the last symbol of each word -> vocabulary ids.
 *
 * Invalid UTF-8 in the text never fails: each byte that does not start a
 * valid sequence (bad lead byte, truncated or overlong sequence, surrogate,
 * > U+10FFFF) is replaced by U+FFFD, as Python's decode(errors="replace")
 * would do per byte.  A text longer than DG_TOKENIZER_MAX_TEXT bytes is
 * refused (ERR_LIMIT); a single pre-token (word) longer than
 * DG_TOKENIZER_MAX_WORD bytes is cut into pieces of at most that size before
 * BPE (keeps BPE bounded; no real prompt has such words).
 *
 * A tokenizer is immutable after open: encode may be called from several
 * threads at once. */
#ifndef DG_MODELS_TOKENIZER_H
#define DG_MODELS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define DG_TOKENIZER_CONTEXT 77                 /* ids per encoded prompt */
#define DG_TOKENIZER_MAX_TEXT (256 * 1024)      /* bytes of input text */
#define DG_TOKENIZER_MAX_WORD 256               /* bytes of one word before BPE */

typedef struct dg_tokenizer dg_tokenizer;

/* Open vocab.json + merges.txt from a directory (a diffusers "tokenizer"
 * folder).  If special_tokens_map.json is there, its pad_token is used for
 * padding (SDXL's second tokenizer pads with "!"); otherwise eos pads.
 * Errors: ERR_IO (missing/unreadable file), ERR_FORMAT (bad JSON, bad merges
 * line, no <|startoftext|>/<|endoftext|> in the vocabulary), ERR_NOMEM. */
dg_status dg_tokenizer_open(const char *dir, dg_tokenizer **out, char *err, size_t errlen);
/* Same, from explicit file paths (pad = eos). */
dg_status dg_tokenizer_open_files(const char *vocab_json, const char *merges_txt,
                                  dg_tokenizer **out, char *err, size_t errlen);
void dg_tokenizer_close(dg_tokenizer *tok);

/* [bos] + bpe_ids[:75] + [eos] + [pad] * rest: exactly 77 ids.
 * *n_bpe (may be NULL) receives the untruncated number of BPE ids. */
dg_status dg_tokenizer_encode(const dg_tokenizer *tok, const char *text,
                              int64_t ids[DG_TOKENIZER_CONTEXT]);
dg_status dg_tokenizer_encode_n(const dg_tokenizer *tok, const char *text,
                                int64_t ids[DG_TOKENIZER_CONTEXT], size_t *n_bpe);

/* The BPE ids of text, untruncated, without bos/eos: writes at most cap ids
 * and stores the total number in *n (so a second call with a larger buffer
 * gets them all). */
dg_status dg_tokenizer_bpe(const dg_tokenizer *tok, const char *text, int64_t *ids, size_t cap,
                           size_t *n);

/* Internal, for tests: the same with the plain reference BPE loop. */
dg_status dg__tokenizer_bpe_ref(const dg_tokenizer *tok, const char *text, int64_t *ids,
                                size_t cap, size_t *n);

int64_t dg_tokenizer_bos(const dg_tokenizer *tok);
int64_t dg_tokenizer_eos(const dg_tokenizer *tok);
int64_t dg_tokenizer_pad(const dg_tokenizer *tok);
size_t dg_tokenizer_vocab_size(const dg_tokenizer *tok);
/* Vocabulary string of an id (e.g. "horse</w>"), or NULL if out of range. */
const char *dg_tokenizer_token(const dg_tokenizer *tok, int64_t id);

#endif
