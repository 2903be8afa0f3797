#!/usr/bin/env bash
# Table-driven parameter validation over every parameter of every slug.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "${DG_TEST_PYTHON:-python3}" "$here/server/test_params.py"
