"""200 concurrent submitters + pollers against one server: no job lost,
duplicated or charged twice; concurrent identical Idempotency-Keys give one
job; v1 sync calls mixed in."""
import os
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, done, png_b64  # noqa: E402

N = 200
srv = Server("--max-connections", "1024", workers=2)
try:
    srv.start()
    B = srv.base
    k = srv.create_key(credits=10000)
    H = {"x-api-key": k["key"]}
    img = png_b64(8, 8)
    results = [None] * N
    errors = []
    start = threading.Barrier(N + 20 + 10)

    def submitter(i):
        s = requests.Session()
        try:
            start.wait()
            r = s.post(B + "/v2/test-echo", json={"image": img, "seed": i, "steps": 1}, headers=H, timeout=120)
            if r.status_code != 200:
                errors.append(f"submit {i}: {r.status_code} {r.text}")
                return
            sub = r.json()
            t0 = time.time()
            while time.time() - t0 < 150:
                st = s.get(sub["status_url"], headers=H, timeout=60).json()
                if st["status"] in ("COMPLETED", "FAILED"):
                    break
                time.sleep(0.25)
            res = s.get(sub["response_url"], headers=H, timeout=60).json()
            results[i] = (sub["request_id"], res["status"], res.get("seed"), res.get("output"))
        except Exception as e:  # noqa: BLE001
            errors.append(f"submitter {i}: {e!r}")

    v1_codes = []

    def syncer(i):
        try:
            start.wait()
            r = requests.post(B + "/v1/test-echo", json={"image": img, "seed": 1000 + i, "steps": 1}, headers=H,
                              timeout=150)
            v1_codes.append((r.status_code, r.headers.get("x-seed-value")))
        except Exception as e:  # noqa: BLE001
            errors.append(f"sync {i}: {e!r}")

    idem_ids = []

    def idem(i):
        try:
            start.wait()
            r = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 1},
                              headers=dict(H, **{"Idempotency-Key": "same-key"}), timeout=120)
            idem_ids.append(r.json().get("request_id"))
        except Exception as e:  # noqa: BLE001
            errors.append(f"idem {i}: {e!r}")

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(N)]
    threads += [threading.Thread(target=syncer, args=(i,)) for i in range(20)]
    threads += [threading.Thread(target=idem, args=(i,)) for i in range(10)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.time() - t0
    print(f"{N} async + 20 sync + 10 idempotent submitters done in {elapsed:.1f}s", flush=True)
    check(not errors, "no client errors", "; ".join(errors[:5]))
    ok = [r for r in results if r]
    check(len(ok) == N, f"all {N} async jobs answered", str(len(ok)))
    check(all(r[1] == "COMPLETED" for r in ok), "all async jobs COMPLETED")
    ids = [r[0] for r in ok]
    check(len(set(ids)) == len(ids), "request ids unique")
    check(sorted(r[2] for r in ok) == list(range(N)), "each job kept its own seed (no mix-ups)")
    check(len({r[3] for r in ok}) == N, "each job has its own media URL")
    check(sorted(c for c, _ in v1_codes) == [200] * 20, "all sync calls 200", str(v1_codes[:5]))
    check(len(set(idem_ids)) == 1 and len(idem_ids) == 10, "one job for one Idempotency-Key", str(set(idem_ids)))
    # Exactly one charge per job: 200 + 20 + 1.
    bal = srv.credits_of(k["id"])
    check(bal == 10000 - N - 20 - 1, "charged exactly once per job", str(bal))
    h = requests.get(B + "/healthz").json()
    check(h["queued"] == 0 and h["processing"] == 0, "queue drained")
    m = requests.get(B + "/metrics").text
    check(f'daguerre_queue_depth{{state="COMPLETED"}} {N + 21}' in m, "store holds exactly the jobs submitted")
    check(f"daguerre_jobs_submitted_total {N + 21}" in m, "submitted counter")
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()
done()
