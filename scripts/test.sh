#!/usr/bin/env bash
# Builds daguerre twice (optimised, then AddressSanitizer + UBSan) and runs the
# whole CTest suite on each.  Test-only Python (the official SDK as a client)
# goes into a virtualenv under build/.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

if [ ! -x build/venv/bin/python ]; then
  python3 -m venv build/venv
  build/venv/bin/pip install -q -r tests/requirements.txt
fi
export DG_TEST_PYTHON="$PWD/build/venv/bin/python"

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$jobs"
(cd build/release && ctest --output-on-failure -j "$jobs")

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DDG_SANITIZE=ON >/dev/null
cmake --build build/asan -j "$jobs"
(cd build/asan && ctest --output-on-failure -j "$jobs")
