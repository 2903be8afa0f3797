#!/usr/bin/env bash
# Signed completion webhooks with retries.
exec bash "$(dirname "$0")/server/run.sh" test_webhook.py
