#include "base/status.h"
#include "t.h"

int main(void) {
  CHECK(strcmp(dg_strerror(DG_STATUS_OK), "ok") == 0);
  CHECK(strcmp(dg_status_name(DG_STATUS_ERR_NOMEM), "ERR_NOMEM") == 0);
  CHECK(strcmp(dg_strerror((dg_status)9999), "unknown status") == 0);
  for (int s = 0; s < DG_STATUS_COUNT_; s++) CHECK(dg_strerror((dg_status)s)[0] != '\0');
  T_DONE();
}
