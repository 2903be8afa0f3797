"""Shared helpers for the server integration tests: start the real
`daguerre serve` process on a free loopback port with a real SQLite file in a
temporary data dir, create keys with the real `daguerre keys` command, make
small PNG images, and count checks ("N passed, N failed")."""
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import requests

BIN = os.environ.get("DAGUERRE_BIN", "daguerre")
SANITIZE = os.environ.get("DG_SANITIZE") == "1"

_passed = 0
_failed = 0


def check(cond, what, detail=""):
    global _passed, _failed
    if cond:
        _passed += 1
    else:
        _failed += 1
        print(f"CHECK FAILED: {what} {detail}", file=sys.stderr, flush=True)
    return cond


def done():
    print(f"{_passed} passed, {_failed} failed", flush=True)
    sys.exit(1 if _failed else 0)


def png(w, h, seed=0, alpha=False):
    """A valid RGB(A) PNG, deterministic from seed."""
    ch = 4 if alpha else 3
    rows = []
    for y in range(h):
        rows.append(b"\x00" + bytes(((x * 7 + y * 13 + seed * 31) % 256) for x in range(w * ch)))
    raw = b"".join(rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if alpha else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_b64(w=16, h=16, seed=0):
    return base64.b64encode(png(w, h, seed)).decode()


def bomb_png(side=100000):
    """A PNG whose header claims side x side pixels (tiny file, huge image)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\x00" * (side * 3 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class Server:
    def __init__(self, *extra, data_dir=None, workers=2):
        self.tmp = tempfile.mkdtemp(prefix="dg-srv-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.extra = list(extra)
        self.workers = workers
        self.proc = None
        self.port = None

    def keys(self, *args):
        out = subprocess.run([BIN, "keys", *args, "--data-dir", self.data_dir], capture_output=True, text=True,
                             timeout=60)
        return out

    def create_key(self, credits=1000, slugs="*", rate=0, name="test"):
        out = self.keys("create", "--credits", str(credits), "--slugs", slugs, "--rate", str(rate), "--name", name,
                        "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def credits_of(self, key_id):
        out = self.keys("list", "--json")
        for k in json.loads(out.stdout):
            if k["id"] == key_id:
                return k["credits"]
        return None

    def start(self, timeout=60):
        portfile = os.path.join(self.tmp, "port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        args = [BIN, "serve", "--port", "0", "--port-file", portfile, "--data-dir", self.data_dir,
                "--workers", str(self.workers), "--test-pipelines", *self.extra]
        self.log = open(os.path.join(self.tmp, "server.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if os.path.exists(portfile):
                self.port = int(open(portfile).read().strip())
                break
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.log_text())
            time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    def log_text(self):
        try:
            return open(os.path.join(self.tmp, "server.log"), errors="replace").read()
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def healthy(self):
        try:
            return requests.get(self.base + "/healthz", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stop the server; returns its exit code (must be 0 after SIGTERM:
        under ASan a leak or error makes it non-zero)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        self.proc = None
        return rc

    def cleanup(self):
        if self.proc:
            self.stop(signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_done(url, headers, timeout=60, interval=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = requests.get(url, headers=headers, timeout=30)
        b = r.json()
        if b.get("status") in ("COMPLETED", "FAILED"):
            return r
        time.sleep(interval)
    return None
