"""Signed completion webhooks: delivered with an HMAC-SHA256 signature,
retried with backoff after a failure, FAILED jobs too, bad URLs refused, and
loopback targets refused unless --allow-private-urls."""
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, done, png_b64, wait_done  # noqa: E402

received = []
lock = threading.Lock()
fail_once = set()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            received.append((self.path, dict(self.headers), body, time.time()))
            first = self.path not in fail_once and "fail-first" in self.path
            if first:
                fail_once.add(self.path)
        self.send_response(500 if first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def wait_for(pred, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with lock:
            if pred():
                return True
        time.sleep(0.05)
    return False


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
HOOK = f"http://127.0.0.1:{httpd.server_address[1]}"
SECRET = "test-secret-123"
img = png_b64(8, 8)
srv = Server("--allow-private-urls", "--webhook-secret", SECRET, workers=1)
try:
    srv.start()
    k = srv.create_key(credits=100)
    H = {"x-api-key": k["key"]}
    sub = requests.post(srv.base + "/v2/test-echo", json={"image": img, "seed": 3},
                        headers=dict(H, **{"x-webhook-url": HOOK + "/done/fail-first"})).json()
    check(wait_for(lambda: sum(1 for r in received if r[0] == "/done/fail-first") >= 2), "webhook retried after 500")
    with lock:
        hits = [r for r in received if r[0] == "/done/fail-first"]
    check(len(hits) == 2 and hits[1][3] - hits[0][3] >= 0.9, "retry after a backoff",
          str([round(h[3] - hits[0][3], 2) for h in hits]))
    path, headers, body, _ = hits[-1]
    sig = headers.get("x-daguerre-signature", "")
    parts = dict(p.split("=", 1) for p in sig.split(","))
    want = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    check(hmac.compare_digest(parts.get("v1", ""), want), "signature verifies", sig)
    check(abs(int(parts["t"]) - time.time()) < 60, "signature timestamp")
    b = json.loads(body)
    check(b["request_id"] == sub["request_id"] and b["status"] == "COMPLETED" and b["seed"] == 3,
          "webhook carries the result body")
    check(headers.get("x-request-id") == sub["request_id"], "x-request-id header")
    check(requests.get(b["output"]).status_code == 200, "webhook output URL works")

    sub = requests.post(srv.base + "/v2/test-echo", json={"image": img, "fail": True},
                        headers=dict(H, **{"x-webhook-url": HOOK + "/failed"})).json()
    check(wait_for(lambda: any(r[0] == "/failed" for r in received)), "webhook for a FAILED job")
    with lock:
        fb = json.loads([r for r in received if r[0] == "/failed"][0][2])
    check(fb["status"] == "FAILED" and "failure requested" in fb["error"], "FAILED webhook body", str(fb))

    r = requests.post(srv.base + "/v2/test-echo", json={"image": img},
                      headers=dict(H, **{"x-webhook-url": "ftp://example.test/x"}))
    check(r.status_code == 400 and "x-webhook-url" in r.json()["error"], "bad webhook URL -> 400")
    m = requests.get(srv.base + "/metrics").text
    check('daguerre_webhooks_total{result="delivered"} 2' in m, "webhook metrics", m[-600:])
    check(srv.stop() == 0, "clean shutdown")

    # Without --allow-private-urls a loopback webhook target is refused (never delivered).
    srv.extra = ["--webhook-attempts", "2"]
    srv.start()
    sub = requests.post(srv.base + "/v2/test-echo", json={"image": img},
                        headers=dict(H, **{"x-webhook-url": HOOK + "/private"})).json()
    wait_done(sub["status_url"], H)
    time.sleep(2.5)
    with lock:
        check(not any(r[0] == "/private" for r in received), "loopback webhook refused by default")
    check("address not allowed" in srv.log_text(), "refusal logged")
    check(os.path.exists(os.path.join(srv.data_dir, "webhook_secret")), "generated secret file")
    check(oct(os.stat(os.path.join(srv.data_dir, "webhook_secret")).st_mode & 0o777) == "0o600", "secret file 0600")
    check(srv.stop() == 0, "clean shutdown")
finally:
    httpd.shutdown()
    srv.cleanup()
done()
