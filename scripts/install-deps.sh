#!/usr/bin/env bash
# Installs the Debian packages daguerre builds and tests with (run as root).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config clang \
  libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev \
  libpng-dev libjpeg-dev libwebp-dev libjansson-dev libopenblas-dev libpcre2-dev \
  python3 python3-venv python3-pip sqlite3 curl >/dev/null
