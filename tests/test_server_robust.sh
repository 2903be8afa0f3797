#!/usr/bin/env bash
# Hostile/broken clients, bad images, retention expiry, the private-URL flag.
exec bash "$(dirname "$0")/server/run.sh" test_robust.py
