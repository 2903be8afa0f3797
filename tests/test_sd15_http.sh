#!/usr/bin/env bash
# sd1.5-img2img end to end through the HTTP API on the tiny fixture model.
exec bash "$(dirname "$0")/server/run.sh" test_sd15_http.py
