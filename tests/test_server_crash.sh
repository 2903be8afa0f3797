#!/usr/bin/env bash
# kill -9 and restart with jobs in flight.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "${DG_TEST_PYTHON:-python3}" "$here/server/test_crash.py"
