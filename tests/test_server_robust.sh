#!/usr/bin/env bash
# Hostile/broken clients, bad images, retention expiry, the private-URL flag.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "${DG_TEST_PYTHON:-python3}" "$here/server/test_robust.py"
