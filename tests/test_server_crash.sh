#!/usr/bin/env bash
# kill -9 and restart with jobs in flight.
exec bash "$(dirname "$0")/server/run.sh" test_crash.py
