"""Every status code of API.md through real requests; v1 and v2 flows;
cancel; idempotency; credits charged at submit and refunded on FAILED; the
official SDK (segmind) pointed at our server."""
import base64
import json
import os
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, bomb_png, check, done, png, png_b64, wait_done  # noqa: E402

srv = Server("--sync-timeout", "2", "--price", "test-echo=2", workers=2)
try:
    srv.start()
    B = srv.base
    k = srv.create_key(credits=100)
    KEY, KID = k["key"], k["id"]
    H = {"x-api-key": KEY}
    img = png_b64(16, 12, seed=3)

    # --- 200 v2 submit / status / result ---------------------------------
    r = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 3, "sleep_ms": 50, "seed": 42}, headers=H)
    check(r.status_code == 200, "v2 submit 200", r.text)
    sub = r.json()
    for f in ("request_id", "status_url", "response_url", "poll_url"):
        check(f in sub, f"submit body has {f}")
    check(sub["status"] == "QUEUED", "submit status QUEUED")
    check(sub["status_url"].startswith(B + "/v2/requests/"), "absolute status_url", sub["status_url"])
    check(sub["remaining_credits"] == 98, "charged 2 at submit (price table)", str(sub))
    saw_progress = False
    t0 = time.time()
    while time.time() - t0 < 30:
        s = requests.get(sub["status_url"], headers=H).json()
        if s["status"] == "PROCESSING" and s.get("step", 0) >= 1:
            saw_progress = 0 < s["progress"] <= 1 and s["total_steps"] == 3 and "eta_s" in s
        if s["status"] == "COMPLETED":
            break
        time.sleep(0.01)
    check(s["status"] == "COMPLETED", "job completes", str(s))
    check(saw_progress, "progress/step/total_steps/eta_s while PROCESSING")
    check(s.get("expires_at") is not None, "expires_at in a finished status body")
    r = requests.get(sub["response_url"], headers=H)
    res = r.json()
    check(r.status_code == 200 and res["status"] == "COMPLETED" and res["error"] is None, "result 200", r.text)
    check(res["seed"] == 42, "seed returned")
    for m in ("inference_time", "queue_time", "total_time", "cost", "remaining_credits"):
        check(m in res["metrics"], f"metrics.{m}")
    check(res["metrics"]["cost"] == 2, "metrics.cost")
    media = requests.get(res["output"])
    check(media.status_code == 200 and media.headers["content-type"] == "image/png", "media URL serves the PNG")
    check(media.content[:8] == b"\x89PNG\r\n\x1a\n", "media bytes are a PNG")
    # Determinism: the same input + seed gives the same output bytes.
    r2 = requests.post(B + "/v1/test-echo", json={"image": img, "seed": 42, "steps": 1}, headers=H)
    check(r2.status_code == 200 and r2.content == media.content, "same input+seed -> same output bytes")
    r3 = requests.post(B + "/v1/test-echo", json={"image": img, "seed": 43, "steps": 1}, headers=H)
    check(r3.status_code == 200 and r3.content != media.content, "another seed -> other output")
    check(r3.headers.get("x-seed-value") == "43", "x-seed-value header")
    for h in ("x-request-id", "x-generation-time", "x-cost", "x-remaining-credits", "x-seed-value"):
        check(h in r3.headers, f"v1 header {h}")
    check(r3.headers["x-cost"] == "2", "x-cost = price")
    # Random seed: -1 and null resolve to a concrete seed which repeats the run.
    r4 = requests.post(B + "/v1/test-echo", json={"image": img, "seed": -1, "steps": 1}, headers=H)
    sv = int(r4.headers["x-seed-value"])
    check(sv >= 0, "seed -1 resolved")
    r5 = requests.post(B + "/v1/test-echo", json={"image": img, "seed": sv, "steps": 1}, headers=H)
    check(r5.content == r4.content, "the returned seed reproduces the run")
    r6 = requests.post(B + "/v2/test-echo", json={"image": img, "seed": None}, headers=H).json()
    check(isinstance(r6.get("seed"), int) and r6["seed"] >= 0, "seed null resolved")

    # --- v1 formats: base64, several images, jpeg/webp -------------------
    r = requests.post(B + "/v1/test-echo", json={"image": img, "base64": True}, headers=H)
    check(r.status_code == 200 and r.headers["content-type"] == "application/json", "v1 base64 -> JSON")
    check(base64.b64decode(r.json()["image"])[:4] == b"\x89PNG", "v1 base64 image decodes")
    r = requests.post(B + "/v1/test-echo", json={"image": img, "num_outputs": 3}, headers=H)
    check(r.status_code == 200 and len(r.json().get("images", [])) == 3, "v1 several images -> images list")
    r = requests.post(B + "/v1/test-echo", json={"image": img, "output_format": "jpg", "output_quality": 50}, headers=H)
    check(r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8",
          "output_format jpg", r.headers.get("content-type"))
    r = requests.post(B + "/v1/test-echo", json={"image": img, "output_format": "webp"}, headers=H)
    check(r.status_code == 200 and r.headers["content-type"] == "image/webp" and r.content[8:12] == b"WEBP",
          "output_format webp")
    sub = requests.post(B + "/v2/test-echo", json={"image": img, "num_outputs": 2, "base64": True}, headers=H).json()
    res = wait_done(sub["status_url"], H)
    res = requests.get(sub["response_url"], headers=H).json()
    check(isinstance(res["output"], list) and len(res["output"]) == 2, "v2 several outputs -> list")
    check(base64.b64decode(res["output"][0])[:4] == b"\x89PNG" and len(res.get("media_urls", [])) == 2,
          "v2 base64 output + media_urls")
    # data: URI input
    r = requests.post(B + "/v1/test-echo", json={"image": "data:image/png;base64," + img}, headers=H)
    check(r.status_code == 200, "data: URI input", r.text[:200])
    # Bearer auth
    r = requests.post(B + "/v1/test-echo", json={"image": img}, headers={"Authorization": "Bearer " + KEY})
    check(r.status_code == 200, "Authorization: Bearer accepted")

    # --- server-sent events: one message per change, ending at COMPLETED ----
    sub = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 4, "sleep_ms": 150}, headers=H).json()
    events = []
    with requests.get(sub["status_url"].replace("/status", "/events"), headers=H, stream=True, timeout=60) as ev:
        check(ev.headers.get("content-type") == "text/event-stream", "SSE content type")
        for line in ev.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    states = [e["status"] for e in events]
    check(states and states[-1] == "COMPLETED", "SSE stream ends with COMPLETED", str(states))
    steps = [e.get("step") for e in events if e["status"] == "PROCESSING"]
    check(len(steps) >= 2 and steps == sorted(steps), "SSE streams increasing steps", str(steps))

    # --- 202: result of an unfinished request -----------------------------
    sub = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 20, "sleep_ms": 100}, headers=H).json()
    r = requests.get(sub["response_url"], headers=H)
    check(r.status_code == 202 and r.json()["status"] in ("QUEUED", "PROCESSING"), "unfinished result -> 202",
          r.text)
    # --- cancel a running request (DELETE) -> FAILED 422, refunded ---------
    before = srv.credits_of(KID)
    t0 = time.time()
    while requests.get(sub["status_url"], headers=H).json()["status"] != "PROCESSING" and time.time() - t0 < 20:
        time.sleep(0.02)
    c = requests.delete(sub["response_url"], headers=H)
    check(c.status_code == 200 and c.json()["cancel"] in ("requested", "cancelled"), "cancel accepted", c.text)
    r = wait_done(sub["status_url"], H)
    check(r is not None and r.status_code == 422 and r.json()["status"] == "FAILED" and "cancel" in r.json()["error"],
          "cancelled running job -> FAILED 422", r.text if r is not None else "timeout")
    check(srv.credits_of(KID) == before + 2, "cancelled job refunded", f"{before} -> {srv.credits_of(KID)}")

    # --- 422 on status AND result of a FAILED request, refund ---------------
    before = srv.credits_of(KID)
    sub = requests.post(B + "/v2/test-echo", json={"image": img, "fail": True, "fail_at_step": 2, "sleep_ms": 400},
                        headers=H).json()
    check(srv.credits_of(KID) == before - 2, "charged at submit")
    r = wait_done(sub["status_url"], H)
    check(r.status_code == 422 and r.json()["status"] == "FAILED" and "failure requested" in r.json()["error"],
          "FAILED status -> 422 with error", r.text)
    r = requests.get(sub["response_url"], headers=H)
    check(r.status_code == 422 and r.json()["status"] == "FAILED" and "metrics" in r.json(), "FAILED result -> 422")
    check(srv.credits_of(KID) == before, "FAILED job refunded")
    # v1 failure -> 500 with the job's error
    r = requests.post(B + "/v1/test-echo", json={"image": img, "fail": True}, headers=H)
    check(r.status_code == 500 and "failure requested" in r.json()["error"] and r.json()["code"] == "JOB_FAILED",
          "v1 failed job -> 500", r.text)

    # --- cancel a queued request (POST .../cancel) ----------------------------
    blockers = [requests.post(B + "/v2/test-echo", json={"image": img, "steps": 10, "sleep_ms": 100}, headers=H).json()
                for _ in range(2)]
    queued = requests.post(B + "/v2/test-echo", json={"image": img}, headers=H).json()
    st = requests.get(queued["status_url"], headers=H).json()
    check(st["status"] == "QUEUED" and st.get("queue_position", -1) >= 0, "queue_position while QUEUED", str(st))
    c = requests.post(queued["response_url"] + "/cancel", headers=H)
    check(c.status_code == 200 and c.json()["status"] == "FAILED" and c.json()["cancel"] == "cancelled",
          "queued job cancelled at once", c.text)
    for b in blockers:
        requests.post(b["response_url"] + "/cancel", headers=H)

    # --- 504: sync timeout, the job is not lost ------------------------------
    r = requests.post(B + "/v1/test-echo", json={"image": img, "steps": 4, "sleep_ms": 1000}, headers=H)
    check(r.status_code == 504 and r.json()["code"] == "TIMEOUT", "sync timeout -> 504", r.text)
    if r.status_code == 504:
        r = wait_done(r.json()["status_url"], H, timeout=60)
        check(r is not None and r.json()["status"] == "COMPLETED", "timed-out sync job still completes")

    # --- Idempotency-Key -------------------------------------------------------
    before = srv.credits_of(KID)
    hi = dict(H, **{"Idempotency-Key": "abc-123"})
    a = requests.post(B + "/v2/test-echo", json={"image": img}, headers=hi).json()
    b = requests.post(B + "/v2/test-echo", json={"image": img}, headers=hi).json()
    check(a["request_id"] == b["request_id"] and b.get("idempotent_replay") is True, "idempotent replay same id")
    check(srv.credits_of(KID) == before - 2, "idempotent replay charged once")

    # --- 400 -------------------------------------------------------------------
    r = requests.post(B + "/v2/test-echo", data=b"{not json", headers=H)
    check(r.status_code == 400 and r.json()["code"] == "INVALID_JSON", "malformed JSON -> 400", r.text)
    r = requests.post(B + "/v2/test-echo", json=[1, 2], headers=H)
    check(r.status_code == 400 and "JSON object" in r.json()["error"], "non-object body -> 400")
    r = requests.post(B + "/v2/test-echo", json={"image": img, "steps": 99}, headers=H)
    check(r.status_code == 400 and "'steps'" in r.json()["error"] and "1 to 50" in r.json()["error"],
          "out of range -> 400 naming param and range", r.text)
    r = requests.post(B + "/v2/test-echo", json={"image": img, "bogus": 1}, headers=H)
    check(r.status_code == 400 and "unknown parameter 'bogus'" in r.json()["error"], "unknown param -> 400")
    r = requests.post(B + "/v2/test-echo", json={"steps": 2}, headers=H)
    check(r.status_code == 400 and "missing required parameter 'image'" in r.json()["error"], "missing required")
    r = requests.post(B + "/v2/test-echo", json={"image": "!!!not base64!!!"}, headers=H)
    check(r.status_code == 400 and "'image'" in r.json()["error"], "invalid base64 -> 400", r.text)
    r = requests.post(B + "/v2/test-echo", json={"image": base64.b64encode(b"hello, not an image").decode()},
                      headers=H)
    check(r.status_code == 400 and r.json()["code"] == "INVALID_IMAGE", "non-image bytes -> 400", r.text)
    r = requests.post(B + "/v2/test-echo", json={"image": base64.b64encode(bomb_png()).decode()}, headers=H)
    check(r.status_code == 400 and r.json()["code"] == "INVALID_IMAGE", "decompression bomb -> 400", r.text)
    r = requests.post(B + "/v2/test-echo", json={"image": f"http://127.0.0.1:{srv.port}/healthz"}, headers=H)
    check(r.status_code == 400 and "127.0.0.1" in r.json()["error"], "URL to a loopback address -> 400", r.text)
    r = requests.post(B + "/v2/test-echo", json={"image": "http://10.1.2.3/x.png"}, headers=H)
    check(r.status_code == 400 and r.json()["code"] == "INVALID_IMAGE", "URL to a private address -> 400", r.text)

    # --- 401 / 403 / 404 / 405 ----------------------------------------------
    r = requests.post(B + "/v2/test-echo", json={"image": img})
    check(r.status_code == 401 and "error" in r.json(), "no key -> 401")
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers={"x-api-key": "dg_wrong"})
    check(r.status_code == 401, "bad key -> 401")
    r = requests.get(B + "/v2/requests/" + a["request_id"] + "/status")
    check(r.status_code == 401, "status without key -> 401")
    k2 = srv.create_key(credits=10, slugs="sd1.5-img2img")
    H2 = {"x-api-key": k2["key"]}
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers=H2)
    check(r.status_code == 403 and r.json()["code"] == "FORBIDDEN", "slug not allowed -> 403")
    r = requests.get(a["status_url"], headers=H2)
    check(r.status_code == 404, "another key's request -> 404")
    r = requests.post(B + "/v2/no-such-model", json={}, headers=H)
    check(r.status_code == 404 and "no-such-model" in r.json()["error"], "unknown model -> 404")
    r = requests.get(B + "/v2/requests/00000000-0000-4000-8000-000000000000/status", headers=H)
    check(r.status_code == 404, "unknown request id -> 404")
    r = requests.get(B + "/v2/requests/../../etc/passwd", headers=H)
    check(r.status_code == 404, "bogus id -> 404")
    r = requests.get(B + "/v2/media/0123456789abcdef0123456789abcdef.png")
    check(r.status_code == 404, "unknown media -> 404")
    r = requests.get(B + "/nope")
    check(r.status_code == 404 and r.json()["code"] == "NOT_FOUND", "unknown endpoint -> 404")
    r = requests.get(B + "/v2/test-echo", headers=H)
    check(r.status_code == 405, "GET on a submit route -> 405")
    # revoke -> 401
    k3 = srv.create_key(credits=10)
    check(srv.keys("revoke", str(k3["id"])).returncode == 0, "keys revoke")
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers={"x-api-key": k3["key"]})
    check(r.status_code == 401, "revoked key -> 401")

    # --- 406 ------------------------------------------------------------------
    k4 = srv.create_key(credits=3)
    H4 = {"x-api-key": k4["key"]}
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers=H4)
    check(r.status_code == 200, "first request within credits")
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers=H4)
    check(r.status_code == 406 and r.json()["code"] == "INSUFFICIENT_CREDITS", "no credits -> 406", r.text)
    check(srv.keys("credit", str(k4["id"]), "5").stdout.strip() == "6", "keys credit adds credits")
    r = requests.post(B + "/v2/test-echo", json={"image": img}, headers=H4)
    check(r.status_code == 200, "credited key works again")

    # --- 429 ------------------------------------------------------------------
    k5 = srv.create_key(credits=100, rate=3)
    H5 = {"x-api-key": k5["key"]}
    codes = [requests.post(B + "/v2/test-echo", json={"image": img}, headers=H5) for _ in range(4)]
    check([c.status_code for c in codes[:3]] == [200] * 3, "within rate limit")
    last = codes[3]
    check(last.status_code == 429 and last.json()["code"] == "RATE_LIMITED", "rate limit -> 429")
    check(int(last.headers.get("Retry-After", "0")) >= 1, "Retry-After header")
    check(last.headers.get("x-rate-limit-reset-at-utc", "").endswith("Z"), "x-rate-limit-reset-at-utc header")

    # --- 502 ------------------------------------------------------------------
    for slug in ("sd1.5-img2img", "style-transfer", "face-to-many", "face-to-sticker", "become-image"):
        body = {"image": img, "prompt": "x"} if slug == "sd1.5-img2img" else (
            {"style_image": img} if slug == "style-transfer" else {})
        r = requests.post(B + "/v2/" + slug, json=body, headers=H)
        check(r.status_code == 502 and r.json()["code"] == "MODEL_UNAVAILABLE", f"{slug} not installed -> 502",
              r.text[:300])
    r = requests.post(B + "/v2/face-to-many", json={}, headers=H)
    check("albedobaseXL_v13.safetensors" in r.json()["error"], "502 names the missing files")

    # --- 413 ------------------------------------------------------------------
    r = requests.post(B + "/v2/test-echo", data=b"{" + b" " * (40 << 20) + b"}", headers=H)
    check(r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE", "huge body -> 413")

    # --- openapi, healthz, metrics -------------------------------------------
    r = requests.get(B + "/openapi.json")
    doc = r.json()
    check(r.status_code == 200 and doc["openapi"].startswith("3."), "openapi document")
    check("/v2/sd1.5-img2img" in doc["paths"] and "/v1/become-image" in doc["paths"], "openapi paths")
    sch = doc["components"]["schemas"]["sd1.5-img2img"]["properties"]
    check(len(sch["scheduler"]["enum"]) == 12 and sch["img_width"]["enum"] == [512, 768], "openapi from tables")
    r = requests.get(B + "/healthz")
    check(r.status_code == 200 and r.json()["status"] == "ok", "healthz")
    m = requests.get(B + "/metrics").text
    check("daguerre_queue_depth{state=\"QUEUED\"}" in m and "daguerre_job_latency_seconds_count" in m and
          "daguerre_workers{state=\"busy\"}" in m and 'daguerre_http_responses_total{code="422"}' in m, "metrics")

    # --- the official SDK, unchanged, against our server ----------------------
    import segmind
    from segmind import InferenceFailed, SegmindClient

    os.environ["SEGMIND_API_KEY"] = KEY
    client = SegmindClient(base_url=B + "/v1")
    segmind._default_client = client
    res = segmind.run("test-echo", image=img, steps=2, seed=7)
    check(res["status"] == "COMPLETED" and res["seed"] == 7 and "inference_time" in res["metrics"],
          "segmind.run (v2 submit + poll)")
    job = client.submit_async("test-echo", image=img, steps=2)
    check(bool(job.request_id), "SDK submit_async gives request_id")
    res = job.wait(timeout=60, interval=0.2)
    check(res["status"] == "COMPLETED" and requests.get(res["output"]).status_code == 200, "SDK job.wait")
    job = client.submit_async("test-echo", image=img, fail=True)
    try:
        job.wait(timeout=60, interval=0.2)
        check(False, "SDK InferenceFailed raised")
    except InferenceFailed as e:
        check("failure requested" in (e.detail or ""), "SDK InferenceFailed carries the error", str(e.detail))
    resp = client.run_sync("test-echo", image=img, seed=42, steps=1)
    check(resp.status_code == 200 and resp.content == media.content, "SDK run_sync (v1) returns the image bytes")
    try:
        client.run_sync("test-echo", image=img, steps=500)
        check(False, "SDK sees a 400")
    except segmind.SegmindError as e:
        check(e.status == 400 and "steps" in (e.detail or ""), "SDK error detail from {'error': ...}")

    check(srv.healthy(), "server still healthy")
    check(srv.stop() == 0, "clean shutdown (exit 0)")
finally:
    srv.cleanup()
done()
