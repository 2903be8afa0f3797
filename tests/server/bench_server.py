"""Serving benchmark (not a test): status-poll latency with 10,000 retained
results and submit throughput under concurrent loopback clients.
Usage: DAGUERRE_BIN=build/release/daguerre build/venv/bin/python tests/server/bench_server.py"""
import http.client
import json
import os
import sqlite3
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, png_b64  # noqa: E402


def pct(lat, p):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3


srv = Server(workers=2)
try:
    k = srv.create_key(credits=1e9)
    srv.start()
    srv.stop()  # creates the schema
    db = sqlite3.connect(os.path.join(srv.data_dir, "daguerre.db"))
    now = time.time()
    ids = []
    for i in range(10000):
        rid = str(uuid.uuid4())
        ids.append(rid)
        db.execute("INSERT INTO jobs(id,slug,state,params,seed,key_id,cost,created_at,started_at,finished_at,"
                   "expires_at,outputs,inference_time) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (rid, "test-echo", "COMPLETED", "{}", i, k["id"], 1, now, now, now, now + 3600, "[]", 0.1))
    db.commit()
    db.close()
    srv.start()
    c = http.client.HTTPConnection("127.0.0.1", srv.port)
    hdr = {"x-api-key": k["key"]}
    lat = []
    for i in range(5000):
        t = time.perf_counter()
        c.request("GET", f"/v2/requests/{ids[i % len(ids)]}/status", headers=hdr)
        c.getresponse().read()
        lat.append(time.perf_counter() - t)
    print(f"status, 10000 retained, 1 keep-alive client: p50 {pct(lat, .5):.3f} ms  p99 {pct(lat, .99):.3f} ms  "
          f"({len(lat) / sum(lat):.0f} req/s)")
    body = json.dumps({"image": png_b64(8, 8), "steps": 1})
    for nclients in (1, 8, 32):
        lats = []
        lk = threading.Lock()

        def client():
            cc = http.client.HTTPConnection("127.0.0.1", srv.port)
            mine = []
            for _ in range(200):
                t = time.perf_counter()
                cc.request("POST", "/v2/test-echo", body=body, headers=dict(hdr, **{"Content-Type": "application/json"}))
                r = cc.getresponse()
                r.read()
                mine.append(time.perf_counter() - t)
                assert r.status == 200
            with lk:
                lats.extend(mine)
        th = [threading.Thread(target=client) for _ in range(nclients)]
        t0 = time.perf_counter()
        for t in th:
            t.start()
        for t in th:
            t.join()
        el = time.perf_counter() - t0
        print(f"submit, {nclients:2d} clients: {len(lats) / el:.0f} req/s  p50 {pct(lats, .5):.2f} ms  "
              f"p99 {pct(lats, .99):.2f} ms")
    srv.stop()
finally:
    srv.cleanup()
