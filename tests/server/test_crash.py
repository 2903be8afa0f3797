"""kill -9 with jobs in flight, then restart on the same data dir: the queued
jobs run, the interrupted one is retried; with --max-attempts 1 it is FAILED
with a clear error and refunded.  Nothing is left hanging."""
import os
import signal
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, done, png_b64, wait_done  # noqa: E402


def wait_processing(url, headers, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = requests.get(url, headers=headers).json()
        if s["status"] == "PROCESSING" and s.get("step", 0) >= 1:
            return True
        time.sleep(0.02)
    return False


img = png_b64(8, 8)
srv = Server("--max-attempts", "2", workers=1)
try:
    srv.start()
    k = srv.create_key(credits=100)
    H = {"x-api-key": k["key"]}
    B = srv.base
    long = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 10, "sleep_ms": 100, "seed": 5},
                         headers=H).json()
    queued = [requests.post(B + "/v2/test-echo", json={"image": img, "seed": i}, headers=H).json() for i in range(5)]
    check(wait_processing(long["status_url"], H), "long job running before the crash")
    check(requests.get(queued[0]["status_url"], headers=H).json()["status"] == "QUEUED", "others queued")
    srv.stop(signal.SIGKILL)
    # Restart on the same data dir (new port: URLs are rebuilt from the Host header).
    srv.start()
    B = srv.base
    rid = long["request_id"]
    r = wait_done(f"{B}/v2/requests/{rid}/status", H, timeout=120)
    check(r is not None and r.json()["status"] == "COMPLETED", "interrupted job retried and COMPLETED",
          r.text if r is not None else "timeout")
    res = requests.get(f"{B}/v2/requests/{rid}", headers=H).json()
    check(res.get("seed") == 5 and requests.get(res["output"]).status_code == 200, "retried job's result served")
    for q in queued:
        r = wait_done(f"{B}/v2/requests/{q['request_id']}/status", H, timeout=120)
        check(r is not None and r.json()["status"] == "COMPLETED", "queued job ran after restart")
    check(srv.credits_of(k["id"]) == 100 - 6, "each job charged once across the crash")
    check("re-queued" in srv.log_text(), "recovery logged")

    # Second crash with max-attempts 1: the interrupted job FAILS clearly and is refunded.
    long = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 10, "sleep_ms": 100}, headers=H).json()
    check(wait_processing(long["status_url"], H), "second long job running")
    srv.stop(signal.SIGKILL)
    srv.extra = ["--max-attempts", "1"]
    srv.start()
    B = srv.base
    r = requests.get(f"{B}/v2/requests/{long['request_id']}/status", headers=H)
    check(r.status_code == 422 and r.json()["status"] == "FAILED" and "server stopped" in r.json()["error"],
          "interrupted job FAILED with a clear error", r.text)
    r = requests.get(f"{B}/v2/requests/{long['request_id']}", headers=H)
    check(r.status_code == 422, "its result endpoint answers 422 too")
    check(srv.credits_of(k["id"]) == 100 - 6, "FAILED interrupted job refunded")
    check(srv.healthy(), "server healthy after recovery")

    # SIGTERM while a job runs: it goes back to the queue without using up an
    # attempt (max-attempts is 1 here) and completes after the restart.
    long = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 6, "sleep_ms": 100}, headers=H).json()
    check(wait_processing(long["status_url"], H), "third long job running")
    check(srv.stop() == 0, "graceful stop with a running job (exit 0)")
    check("re-queued" in srv.log_text(), "running job re-queued at shutdown")
    srv.start()
    r = wait_done(f"{srv.base}/v2/requests/{long['request_id']}/status", H, timeout=120)
    check(r is not None and r.json()["status"] == "COMPLETED", "job interrupted by SIGTERM completes after restart",
          r.text if r is not None else "timeout")
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()
done()
