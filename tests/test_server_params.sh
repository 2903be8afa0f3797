#!/usr/bin/env bash
# Table-driven validation of every parameter of every slug.
exec bash "$(dirname "$0")/server/run.sh" test_params.py
