#!/usr/bin/env bash
# The client commands (submit/status/result/wait/call) against a real
# `daguerre serve --test-pipelines` on a free loopback port with a temporary
# data dir and a key made by `daguerre keys create`; checks outputs and every
# exit code (0 ok, 1 usage, 3 FAILED, 4 timed out, 5 HTTP/transport, 6 not ready).
set -uo pipefail
BIN="${DAGUERRE_BIN:?DAGUERRE_BIN must point at the daguerre binary}"
PY="${DG_TEST_PYTHON:-python3}"
tmp="$(mktemp -d /tmp/dg-client-XXXXXX)"
srv_pid=""
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0 failed=0
check() { # check "what" CONDITION...
  local what="$1"; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "CHECK FAILED: $what" >&2; fi
}
# run CMD...: sets rc, out, err
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out="$(cat "$tmp/out")"; err="$(cat "$tmp/err")"; }
magic() { head -c "$2" "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
is_png() { [ "$(magic "$1" 8)" = "89504e470d0a1a0a" ]; }
is_webp() { [ "$(head -c 4 "$1")" = "RIFF" ] && [ "$(tail -c +9 "$1" | head -c 4)" = "WEBP" ]; }

# --- server + key
"$BIN" serve --port 0 --port-file "$tmp/port" --data-dir "$tmp/data" --workers 1 --test-pipelines \
  >"$tmp/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 1 600); do [ -s "$tmp/port" ] && break; sleep 0.1; done
if [ ! -s "$tmp/port" ]; then echo "server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; fi
export DAGUERRE_URL="http://127.0.0.1:$(cat "$tmp/port")"
key="$("$BIN" keys create --credits 1000 --name client-test --data-dir "$tmp/data" 2>/dev/null)"
check "key created" test -n "$key"
export DAGUERRE_API_KEY="$key"

# an input image (PNG written with the standard library only)
"$PY" - "$tmp/in.png" <<'PYEOF'
import struct, sys, zlib
w, h = 24, 16
raw = b"".join(b"\0" + bytes((x * 9 + y * 5) % 256 for x in range(w * 3)) for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PYEOF
IMG="image=@$tmp/in.png"

# --- submit / wait / status / result
run "$BIN" submit test-echo "$IMG" steps=2 seed=7 prompt:='"typed as JSON"'
check "submit exits 0" test "$rc" = 0
id="$out"
check "submit prints a request_id" test -n "$id"
run "$BIN" wait "$id" --timeout 60 --interval 0.2
check "wait exits 0 ($rc: $err)" test "$rc" = 0
check "wait prints the COMPLETED body" grep -q '"status": "COMPLETED"' "$tmp/out"
check "wait body has the seed" grep -q '"seed": 7' "$tmp/out"
run "$BIN" status "$id"
check "status exits 0" test "$rc" = 0
check "status says COMPLETED" grep -q '"COMPLETED"' "$tmp/out"
run "$BIN" result "$id" -o "$tmp/res.{ext}"
check "result exits 0 ($err)" test "$rc" = 0
check "result saved a PNG" is_png "$tmp/res.png"
check "result prints the saved path" grep -q "$tmp/res.png" "$tmp/out"

# --- call: async with several outputs, and sync; same seed -> same bytes
run "$BIN" call test-echo "$IMG" num_outputs=2 output_format=webp seed=7 -o "$tmp/multi.webp" --interval 0.2
check "call (2 outputs) exits 0 ($err)" test "$rc" = 0
check "call saved output 1 as WebP" is_webp "$tmp/multi-1.webp"
check "call saved output 2 as WebP" is_webp "$tmp/multi-2.webp"
run "$BIN" call test-echo "$IMG" steps=2 seed=7 -o "$tmp/async.png" --interval 0.2
check "call exits 0" test "$rc" = 0
run "$BIN" call --sync test-echo "$IMG" steps=2 seed=7 -o "$tmp/sync.png"
check "call --sync exits 0 ($err)" test "$rc" = 0
check "call --sync saved a PNG" is_png "$tmp/sync.png"
check "sync and async outputs are identical for one seed" cmp -s "$tmp/sync.png" "$tmp/async.png"
check "the output is the one of the first request" cmp -s "$tmp/res.png" "$tmp/async.png"
run "$BIN" call --sync test-echo "$IMG" num_outputs=3 seed=1 -o "$tmp/s_{n}.{ext}"
check "call --sync with 3 outputs exits 0 ($err)" test "$rc" = 0
check "call --sync saved 3 files" is_png "$tmp/s_3.png"

# --- Idempotency-Key: the same key gives back the same request
run "$BIN" submit test-echo "$IMG" seed=3 --idempotency-key "cli-test-1"
id1="$out"
run "$BIN" submit test-echo "$IMG" seed=3 --idempotency-key "cli-test-1"
check "same idempotency key, same request_id ($id1 / $out)" test -n "$id1" -a "$out" = "$id1"
run "$BIN" submit test-echo "$IMG" seed=3 --header "Idempotency-Key: cli-test-2"
check "another key (via --header), another request" test -n "$out" -a "$out" != "$id1"

# --- FAILED -> 3
run "$BIN" submit test-echo "$IMG" fail=true
fid="$out"
check "submit of a failing request exits 0" test "$rc" = 0
run "$BIN" wait "$fid" --timeout 60 --interval 0.2
check "wait on FAILED exits 3 (got $rc)" test "$rc" = 3
check "wait on FAILED prints the error" grep -q "failure requested" "$tmp/err"
run "$BIN" status "$fid"
check "status of FAILED exits 3 (got $rc)" test "$rc" = 3
run "$BIN" result "$fid"
check "result of FAILED exits 3 (got $rc)" test "$rc" = 3
run "$BIN" call test-echo "$IMG" fail=true fail_at_step=1 --interval 0.2 -o "$tmp/never.png"
check "call of FAILED exits 3 (got $rc)" test "$rc" = 3
check "no output written for FAILED" test ! -e "$tmp/never.png"
run "$BIN" call --sync test-echo "$IMG" fail=true -o "$tmp/never.png"
check "call --sync of FAILED exits 3 (got $rc: $err)" test "$rc" = 3
check "call --sync of FAILED prints the error" grep -q "failure requested" "$tmp/err"

# --- timeout -> 4, not ready -> 6
run "$BIN" submit test-echo "$IMG" steps=50 sleep_ms=200
sid="$out"
t0=$(date +%s)
run "$BIN" wait "$sid" --timeout 1 --interval 0.2
t1=$(date +%s)
check "wait past its deadline exits 4 (got $rc)" test "$rc" = 4
check "wait gave up in time" test $((t1 - t0)) -le 4
run "$BIN" result "$sid"
check "result of an unfinished request exits 6 (got $rc)" test "$rc" = 6
run "$BIN" call test-echo "$IMG" steps=50 sleep_ms=200 --timeout 1 --interval 0.2
check "call past its deadline exits 4 (got $rc)" test "$rc" = 4

# --- cancel: the running request ends FAILED (wait exits 3)
run "$BIN" cancel "$sid"
check "cancel exits 0 ($rc: $err)" test "$rc" = 0
run "$BIN" wait "$sid" --timeout 60 --interval 0.2
check "a cancelled request ends FAILED: wait exits 3 (got $rc)" test "$rc" = 3

# --- HTTP / transport errors -> 5
run "$BIN" status does-not-exist
check "unknown id exits 5 (got $rc)" test "$rc" = 5
check "unknown id names HTTP 404" grep -q "HTTP 404" "$tmp/err"
run "$BIN" submit test-echo "$IMG" steps=999
check "invalid parameter exits 5 (got $rc)" test "$rc" = 5
check "invalid parameter names HTTP 400 and the parameter" grep -q "HTTP 400.*steps" "$tmp/err"
run "$BIN" submit test-echo "$IMG" --key wrong-key
check "bad key exits 5 (got $rc)" test "$rc" = 5
check "bad key names HTTP 401" grep -q "HTTP 401" "$tmp/err"
run env -u DAGUERRE_API_KEY "$BIN" status "$id"
check "no key exits 5 (got $rc)" test "$rc" = 5
run "$BIN" submit no-such-model "$IMG"
check "unknown model exits 5 (got $rc)" test "$rc" = 5
run "$BIN" status "$id" --url http://127.0.0.1:1
check "no server exits 5 (got $rc)" test "$rc" = 5

# --- usage -> 1
run "$BIN" submit
check "submit without SLUG exits 1" test "$rc" = 1
run "$BIN" submit test-echo 'bad:={'
check "bad JSON value exits 1" test "$rc" = 1
run "$BIN" submit test-echo "image=@$tmp/missing.png"
check "missing @file exits 1" test "$rc" = 1
run "$BIN" wait "$id" --timeout soon
check "bad --timeout exits 1" test "$rc" = 1
run "$BIN" status "$id" extra
check "extra argument exits 1" test "$rc" = 1
run "$BIN" status "$id" --header "no colon"
check "malformed --header exits 1" test "$rc" = 1
run "$BIN" call --help
check "--help exits 0" test "$rc" = 0
check "--help documents the exit codes" grep -q "3 the request FAILED" "$tmp/out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
