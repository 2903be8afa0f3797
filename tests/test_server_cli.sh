#!/usr/bin/env bash
# Operator commands: keys, models, serve options / config file, absolute URLs.
exec bash "$(dirname "$0")/server/run.sh" test_cli.py
