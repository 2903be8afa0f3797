"""sd1.5-img2img end to end through HTTP on the tiny fixture model: the real
server, a models directory holding the diffusers-layout fixture, v2 submit +
status polling (progress visible while PROCESSING) + result + media download,
and v1 (sync) giving the same image for the same seed.  Also 502 naming the
missing files when the weights are not installed."""
import base64
import os
import struct
import tempfile
import time

import requests

from common import Server, check, done

data = os.environ.get("DG_TEST_DATA") or os.path.join(os.path.dirname(__file__), "..", "data")
fixture = os.path.abspath(os.path.join(data, "sd15-tiny", "diffusers"))
inp = base64.b64encode(open(os.path.join(data, "sd15-tiny", "goldens", "img2img_input.png"), "rb").read()).decode()

models = tempfile.mkdtemp(prefix="dg-models-")
os.symlink(fixture, os.path.join(models, "sd1.5-img2img"))
empty_models = tempfile.mkdtemp(prefix="dg-nomodels-")


def png_size(b):
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", b[16:24])


params = {"image": inp, "prompt": "a watercolor painting of a lighthouse at dusk",
          "negative_prompt": "blurry", "scheduler": "Euler a", "num_inference_steps": 20,
          "strength": 0.1, "seed": 98877465625, "img_width": 512, "img_height": 512,
          "output_format": "png"}

srv = Server("--models-dir", models, workers=1)
try:
    srv.start()
    key = srv.create_key(credits=100)
    H = {"x-api-key": key["key"]}
    r = requests.post(srv.base + "/v2/sd1.5-img2img", json=params, headers=H, timeout=60)
    check(r.status_code == 200, "v2 submit", r.text)
    sub = r.json()
    seen = set()
    progress = []
    body = None
    t0 = time.time()
    while time.time() - t0 < 600:
        s = requests.get(sub["status_url"], headers=H, timeout=30)
        body = s.json()
        seen.add(body["status"])
        if body["status"] == "PROCESSING" and "progress" in body:
            progress.append(body["progress"])
        if body["status"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.2)
    check(body and body["status"] == "COMPLETED", "sd1.5 job completed", str(body))
    check(all(0.0 <= p <= 1.0 for p in progress), "progress within 0..1", str(progress))
    res = requests.get(sub["response_url"], headers=H, timeout=30)
    check(res.status_code == 200, "result 200", res.text)
    rb = res.json()
    check(rb.get("seed") == 98877465625, "seed reported", str(rb.get("seed")))
    out = rb.get("output")
    url = out[0] if isinstance(out, list) else out
    img = requests.get(url, timeout=30)
    check(img.status_code == 200 and png_size(img.content) == (512, 512), "512x512 PNG output",
          str(img.status_code))

    # v1 with the same seed: the same pixels (PNG encoding is deterministic too).
    v1 = requests.post(srv.base + "/v1/sd1.5-img2img", json=params, headers=H, timeout=600)
    check(v1.status_code == 200, "v1 200", v1.text[:200])
    check(v1.headers.get("content-type", "").startswith("image/png"), "v1 raw PNG")
    check(v1.headers.get("x-seed-value") == "98877465625", "v1 x-seed-value")
    check(v1.content == img.content, "same seed, same image (v1 == v2)")

    # Invalid parameters never reach the engine.
    bad = dict(params, img_width=640)
    r = requests.post(srv.base + "/v2/sd1.5-img2img", json=bad, headers=H, timeout=30)
    check(r.status_code == 400 and "img_width" in r.json().get("error", ""), "img_width 640 -> 400", r.text)
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()

srv = Server("--models-dir", empty_models, workers=1)
try:
    srv.start()
    key = srv.create_key(credits=100)
    r = requests.post(srv.base + "/v2/sd1.5-img2img", json=params, headers={"x-api-key": key["key"]}, timeout=30)
    check(r.status_code == 502 and "sd1.5-img2img" in r.json().get("error", ""), "not installed -> 502", r.text)
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()
done()
