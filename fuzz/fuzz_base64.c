/* Fuzz base64: decode must never overrun; what decodes must re-encode and
 * decode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t n = 0;
  if (dg_base64_decode((const char *)data, size, &out, &n) == DG_STATUS_OK) {
    if (n > dg_base64_decoded_max(size)) abort();
    size_t el = 0;
    char *e = dg_base64_encode(out, n, &el);
    if (!e || el != dg_base64_encoded_len(n)) abort();
    uint8_t *back = NULL;
    size_t bn = 0;
    if (dg_base64_decode(e, el, &back, &bn) != DG_STATUS_OK || bn != n || memcmp(back, out, n) != 0)
      abort();
    free(back);
    free(e);
    free(out);
  } else if (out) {
    abort();
  }
  /* and the raw bytes round-trip through both encoders */
  char *u = dg_base64url_encode(data, size, NULL);
  if (!u) abort();
  if (dg_base64_decode(u, strlen(u), &out, &n) != DG_STATUS_OK || n != size ||
      (size && memcmp(out, data, size) != 0))
    abort();
  free(out);
  free(u);
  return 0;
}
