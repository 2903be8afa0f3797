"""The operator commands: keys (hash stored, never the key), models, serve
options and config file, --public-url and the Host header in absolute URLs."""
import glob
import hashlib
import json
import os
import subprocess
import sys

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, Server, check, done, png_b64  # noqa: E402


def run(*args, timeout=60):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


srv = Server(workers=1)
try:
    d = srv.data_dir
    k = srv.create_key(credits=7, slugs="test-echo,sd1.5-img2img", rate=5, name="bob")
    check(k["key"].startswith("dg_") and len(k["key"]) == 67, "key format", k["key"])
    plain = run("keys", "create", "--data-dir", d, "--credits", "1")
    check(plain.returncode == 0 and plain.stdout.strip().startswith("dg_"), "keys create prints the key alone")
    lst = json.loads(run("keys", "list", "--data-dir", d, "--json").stdout)
    bob = [x for x in lst if x["id"] == k["id"]][0]
    check(bob["credits"] == 7 and bob["slugs"] == "test-echo,sd1.5-img2img" and bob["rate_per_min"] == 5 and
          bob["name"] == "bob" and not bob["revoked"], "keys list fields")
    check(all("key" not in x and "hash" not in x for x in lst), "keys list shows no key material")
    blob = b"".join(open(f, "rb").read() for f in glob.glob(os.path.join(d, "daguerre.db*")))
    check(k["key"].encode() not in blob, "the plain key is not stored")
    check(hashlib.sha256(k["key"].encode()).hexdigest().encode() in blob, "its SHA-256 is")
    check(run("keys", "credit", str(k["id"]), "-2", "--data-dir", d).stdout.strip() == "5", "negative credit")
    check(run("keys", "revoke", "999", "--data-dir", d).returncode == 1, "revoke unknown id fails")
    check(run("keys", "bogus", "--data-dir", d).returncode == 2, "unknown keys subcommand")
    check(run("keys", "create", "--credits", "ten", "--data-dir", d).returncode == 2, "non-numeric credits refused")
    check(run("keys", "credit", str(k["id"]), "x", "--data-dir", d).returncode == 2, "non-numeric amount refused")
    table = run("keys", "list", "--data-dir", d).stdout
    check("bob" in table and "CREDITS" in table, "keys list table")

    m = run("models", "--models-dir", os.path.join(srv.tmp, "nomodels"))
    check(m.returncode == 0 and m.stdout.count("NOT READY") == 5 and "0 of 5 models ready" in m.stdout,
          "models: five slugs, none ready", m.stdout)
    check("albedobaseXL_v13.safetensors" in m.stdout, "models names missing files")
    mj = json.loads(run("models", "--json", "--test-pipelines").stdout)
    check([x["slug"] for x in mj][:5] == ["sd1.5-img2img", "style-transfer", "face-to-many", "face-to-sticker",
                                           "become-image"], "models --json slugs")
    check(any(x["slug"] == "test-echo" and x["ready"] for x in mj), "test-echo ready")

    bad = run("serve", "--bogus-flag", "1")
    check(bad.returncode == 2 and "unknown option" in bad.stderr, "serve rejects unknown options")
    bad = run("serve", "--host", "localhost", "--port", "0", "--data-dir", d)
    check(bad.returncode == 1 and "numeric" in bad.stderr, "serve: clear error for a bad host")
    bad = run("serve", "--workers", "-3")
    check(bad.returncode == 2, "serve rejects a bad number")

    cfg = os.path.join(srv.tmp, "serve.conf")
    with open(cfg, "w") as f:
        f.write("# a config file\nretention = 120\nprice = test-echo=3\nsync-timeout = 30\n"
                "public-url = https://images.example.test/\n")
    srv.extra = ["--config", cfg]
    srv.start()
    H = {"x-api-key": k["key"]}
    img = png_b64(8, 8)
    r = requests.post(srv.base + "/v1/test-echo", json={"image": img}, headers=H)
    check(r.status_code == 200 and r.headers["x-cost"] == "3" and r.headers["x-remaining-credits"] == "2",
          "config: price applied", str(r.headers))
    run("keys", "credit", str(k["id"]), "10", "--data-dir", d)
    sub = requests.post(srv.base + "/v2/test-echo", json={"image": img}, headers=dict(H, Host="ignored:1")).json()
    check(sub["status_url"].startswith("https://images.example.test/v2/requests/"), "--public-url wins",
          sub["status_url"])
    st = requests.get(f"{srv.base}/v2/requests/{sub['request_id']}/status", headers=H).json()
    check(st["status"] in ("QUEUED", "PROCESSING", "COMPLETED"), "status of the config-file server's job")
    srv.stop()
    srv.extra = []
    srv.start()
    sub2 = requests.post(srv.base + "/v2/test-echo", json={"image": img},
                         headers=dict(H, Host="api.example.test:9000")).json()
    check(sub2["status_url"].startswith("http://api.example.test:9000/v2/requests/"), "Host header honoured",
          sub2["status_url"])
    r = requests.post(srv.base + "/v2/test-echo", json={"image": img}, headers=dict(H, Host="evil\"host"))
    check(r.status_code == 200 and r.json()["status_url"].startswith(f"http://127.0.0.1:{srv.port}/"),
          "a malformed Host header is not reflected")
    r = requests.post(srv.base + "/v2/style-transfer", json={"style_image": img}, headers=H)
    check(r.status_code == 403, "slug outside the key's list -> 403")
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()
done()
