/* Base64 (RFC 4648): encode with the standard alphabet; decode either the
 * standard or the URL-safe alphabet, padded or not, with ASCII whitespace
 * ignored anywhere.  Any other character, misplaced padding or an impossible
 * length is rejected (ERR_FORMAT). */
#ifndef DG_BASE_BASE64_H
#define DG_BASE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Characters (without the NUL) that encoding n bytes produces. */
size_t dg_base64_encoded_len(size_t n);
/* Upper bound of the decoded size of an n-character input. */
size_t dg_base64_decoded_max(size_t n);

/* Standard alphabet with '=' padding; malloc'd NUL-terminated string, NULL on
 * OOM.  *out_len (optional) receives the length without the NUL. */
char *dg_base64_encode(const uint8_t *data, size_t n, size_t *out_len);
/* Same with the URL-safe alphabet ('-', '_') and no padding. */
char *dg_base64url_encode(const uint8_t *data, size_t n, size_t *out_len);

/* Decode n characters of s (standard or URL-safe, padding optional but
 * checked when present).  *out is malloc'd (never NULL on success, even for
 * an empty result), *out_n its length. */
dg_status dg_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n);

#endif
