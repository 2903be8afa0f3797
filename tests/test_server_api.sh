#!/usr/bin/env bash
# Server integration: every status code of API.md, v1/v2 flows, cancel,
# idempotency, credits and refunds, the official Python SDK against our server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${DG_TEST_PYTHON:-python3}"
exec "$py" "$here/server/test_api.py"
