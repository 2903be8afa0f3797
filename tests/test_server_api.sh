#!/usr/bin/env bash
# Server integration: every status code of API.md, v1/v2 flows, cancel, idempotency, credits, the official SDK.
exec bash "$(dirname "$0")/server/run.sh" test_api.py
