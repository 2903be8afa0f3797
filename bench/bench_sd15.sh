#!/usr/bin/env bash
# The sd1.5-img2img end-to-end figures of bench/RESULTS.md in one command:
# builds `daguerre` and `bench_sd15` (Release), writes the full-size
# random-weight SD1.5 models with `daguerre gen-model` if they are not there
# yet (f16 single file, 2.1 GB; f32 diffusers folder, 4.3 GB, only with
# --f32-model), then prints the tables.
#
#   bench/bench_sd15.sh [--build DIR] [--quick] [--f32-model] [--no-tiny] [-- bench_sd15 options]
#
#   --build DIR   build directory (default build/bench-sd15); the models go to DIR/models-sd15-*
#   --quick       4 steps (3 UNet steps) instead of 20 (15)
#   --f32-model   also run the f32 diffusers-folder model (the f16 single file is always run)
#   --no-tiny     skip the tiny fixture model (bf16 vs f32 pixel difference at 64 and 512)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build/bench-sd15"
quick=()
f32=0
tiny=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --f32-model) f32=1; shift ;;
    --no-tiny) tiny=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench_sd15.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" --target daguerre bench_sd15 bench_kernels -j "$(nproc)" > /dev/null

# The host's speed at the time (shared machines vary): OpenBLAS sgemm, the FMA and AMX loops.
speed() { "$build/bench/bench_kernels" --peak-only 2>/dev/null | grep -E "sgemm|loop" | sed 's/^/  /'; }

tok="$here/tests/data/sd15-tiny/diffusers/tokenizer"
m16="$build/models-sd15-f16"
if [ ! -f "$m16/sd1.5-img2img/sd15-full-f16.safetensors" ]; then
  mkdir -p "$m16/sd1.5-img2img/tokenizer"
  cp "$tok/vocab.json" "$tok/merges.txt" "$m16/sd1.5-img2img/tokenizer/"
  "$build/daguerre" gen-model --arch sd15 --size full --dtype f16 --layout single --seed 42 \
    -o "$m16/sd1.5-img2img/sd15-full-f16.safetensors.part"
  mv "$m16/sd1.5-img2img/sd15-full-f16.safetensors.part" "$m16/sd1.5-img2img/sd15-full-f16.safetensors"
fi

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "uptime: $(uptime)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
echo "host speed before:"
speed
echo
echo "## full size, f16 single-file checkpoint"
"$build/bench/bench_sd15" "$m16" "${quick[@]}" "${extra[@]}"

if [ "$f32" = 1 ]; then
  m32="$build/models-sd15-f32"
  if [ ! -d "$m32/sd1.5-img2img" ]; then
    rm -rf "$m32/sd1.5-img2img.part"
    "$build/daguerre" gen-model --arch sd15 --size full --dtype f32 --layout diffusers --seed 42 \
      --tokenizer "$tok" -o "$m32/sd1.5-img2img.part"
    mv "$m32/sd1.5-img2img.part" "$m32/sd1.5-img2img"
  fi
  echo
  echo "## full size, f32 diffusers folder"
  "$build/bench/bench_sd15" "$m32" "${quick[@]}" "${extra[@]}"
fi

if [ "$tiny" = 1 ]; then
  # the tiny fixture model's weights are generated (as the tests do: tests/gen_test_data.cmake)
  cmake -DDAGUERRE="$build/daguerre" -DDATA="$here/tests/data" -DOUT="$build/test-data" \
    -P "$here/tests/gen_test_data.cmake" > /dev/null
  for size in 64 512; do
    echo
    echo "## tiny fixture model (generated sd15-tiny/diffusers), ${size}x${size}"
    "$build/bench/bench_sd15" "$build/test-data/sd15-tiny/diffusers" --size "$size" "${extra[@]}"
  done
fi

echo
echo "host speed after:"
speed
