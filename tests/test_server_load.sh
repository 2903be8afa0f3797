#!/usr/bin/env bash
# 200 concurrent submitters + pollers: no job lost, duplicated or charged twice.
exec bash "$(dirname "$0")/server/run.sh" test_load.py
