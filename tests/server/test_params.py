"""Table-driven test over every parameter of every slug, the expected tables
typed independently from the seeds (shared/seeds/*.txt): default applied,
boundaries accepted, below/above range rejected, wrong type rejected, bad
enum rejected, each 400 naming the parameter and the allowed values; the
OpenAPI document agrees with the same tables.  Uses POST /v2/{slug}/validate
(validation only: nothing queued, nothing charged) so the SDXL slugs, whose
weights are absent, are covered too."""
import os
import sys

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, done, png_b64  # noqa: E402

IMG = "IMAGE"
N, I, S, BOOL, E, SEED = "number", "integer", "string", "boolean", "enum", "seed"
SCHED = ["DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler", "Heun", "DPM2 a Karras", "DPM2 Karras", "LMS",
         "PNDM", "UniPC", "DDPM"]
FTM_IMG = "https://segmind-sd-models.s3.amazonaws.com/display_images/Ftm_ip.png.jpg"
FTS_IMG = "https://segmind-sd-models.s3.amazonaws.com/display_images/face-to-sticker-input.jpg"
BI_IMG = "https://segmind-inference-io.s3.us-east-1.amazonaws.com/sample_images/image_71.webp"
BI_BEC = "https://segmind-inference-io.s3.amazonaws.com/sample_images/40548cb9-ae1f-4caa-969d-382c913a74ef.webp"

# name: (type, default, min, max, enum, required)   (None = absent)
TABLES = {
    "sd1.5-img2img": {
        "image": (IMG, None, None, None, None, True),
        "prompt": (S, None, None, None, None, True),
        "base64": (BOOL, False, None, None, None, False),
        "guidance_scale": (N, 7.5, 0.1, 25, None, False),
        "img_height": (I, 512, None, None, [512, 768], False),
        "img_width": (I, 512, None, None, [512, 768], False),
        "negative_prompt": (S, None, None, None, None, False),
        "num_inference_steps": (I, 20, 20, 100, None, False),
        "samples": (I, 1, 1, 4, None, False),
        "scheduler": (E, "DDIM", None, None, SCHED, False),
        "seed": (SEED, -1, None, None, None, False),
        "strength": (N, 1, 0.1, 1, None, False),
    },
    "style-transfer": {
        "style_image": (IMG, None, None, None, None, True),
        "height": (I, 1024, 256, 2048, None, False),
        "model": (E, "fast", None, None, ["fast", "high-quality", "realistic", "cinematic", "animated"], False),
        "negative_prompt": (S, "", None, None, None, False),
        "number_of_images": (I, 1, 1, 10, None, False),
        "output_format": (E, "webp", None, None, ["webp", "jpg", "png"], False),
        "output_quality": (I, 80, 0, 100, None, False),
        "prompt": (S, "A panda running on a jogging track", None, None, None, False),
        "seed": (SEED, None, None, None, None, False),
        "structure_denoising_strength": (N, 0.65, 0, 1, None, False),
        "structure_depth_strength": (N, 1, 0, 2, None, False),
        "structure_image": (IMG, None, None, None, None, False),
        "width": (I, 1024, 256, 2048, None, False),
    },
    "face-to-many": {
        "control_depth_strength": (N, 0.8, 0, 1, None, False),
        "custom_lora_url": (S, None, None, None, None, False),
        "denoising_strength": (N, 0.65, 0, 1, None, False),
        "image": (IMG, FTM_IMG, None, None, None, False),
        "instant_id_strength": (N, 1, 0, 1, None, False),
        "lora_scale": (N, 1, 0, 1, None, False),
        "negative_prompt": (S, "", None, None, None, False),
        "prompt": (S, "a person", None, None, None, False),
        "prompt_strength": (N, 4.5, 0, 20, None, False),
        "seed": (SEED, -1, None, None, None, False),
        "style": (E, "3D", None, None, ["3D", "Emoji", "Video game", "Pixels", "Clay", "Toy"], False),
    },
    "face-to-sticker": {
        "height": (I, 1024, 256, 2048, None, False),
        "image": (IMG, FTS_IMG, None, None, None, False),
        "instant_id_strength": (N, 1, 0, 1, None, False),
        "ip_adapter_noise": (N, 0.5, 0, 1, None, False),
        "ip_adapter_weight": (N, 0.2, 0, 1, None, False),
        "negative_prompt": (S, "", None, None, None, False),
        "prompt": (S, "a person", None, None, None, False),
        "prompt_strength": (N, 7, 0, 20, None, False),
        "seed": (SEED, 321312, None, None, None, False),
        "steps": (I, 20, 1, 100, None, False),
        "upscale": (BOOL, False, None, None, None, False),
        "upscale_steps": (I, 10, 1, 100, None, False),
        "width": (I, 1024, 256, 2048, None, False),
    },
    "become-image": {
        "control_depth_strength": (N, 0.8, 0, 1, None, False),
        "denoising_strength": (N, 1, 0, 1, None, False),
        "disable_safety_checker": (BOOL, True, None, None, None, False),
        "image": (IMG, BI_IMG, None, None, None, False),
        "image_to_become": (IMG, BI_BEC, None, None, None, False),
        "image_to_become_noise": (N, 0.3, 0, 1, None, False),
        "image_to_become_strength": (N, 0.75, 0, 1, None, False),
        "instant_id_strength": (N, 1, 0, 1, None, False),
        "negative_prompt": (S, "", None, None, None, False),
        "number_of_images": (I, 2, 1, 10, None, False),
        "prompt": (S, "a person", None, None, None, False),
        "prompt_strength": (N, 2, 0, 3, None, False),
        "seed": (SEED, None, None, None, None, False),
    },
}
COMMON = {"base64", "output_format", "output_quality"}  # server-level options every slug accepts

srv = Server(workers=0)
try:
    srv.start()
    B = srv.base
    H = {"x-api-key": srv.create_key(credits=5)["key"]}
    img = png_b64(8, 8)

    def validate(slug, body):
        return requests.post(f"{B}/v2/{slug}/validate", json=body, headers=H)

    doc = requests.get(B + "/openapi.json").json()
    for slug, table in TABLES.items():
        minimal = {n: (img if t[0] == IMG else "a prompt") for n, t in table.items() if t[5]}
        r = validate(slug, minimal)
        check(r.status_code == 200, f"{slug}: minimal body valid", r.text)
        got = r.json()["params"]
        # Every documented parameter and nothing else (plus the server options).
        check(set(got) - COMMON <= set(table), f"{slug}: no undocumented params", str(set(got) - set(table)))
        props = doc["components"]["schemas"][slug]["properties"]
        check(set(props) - (COMMON - set(table)) == set(table), f"{slug}: openapi has exactly the table's params",
              str(set(props) ^ set(table)))
        req = set(doc["components"]["schemas"][slug].get("required", []))
        check(req == {n for n, t in table.items() if t[5]}, f"{slug}: openapi required")
        for name, (typ, default, lo, hi, enum, required) in table.items():
            where = f"{slug}.{name}"
            # default applied
            if typ == SEED:
                if default in (-1, None):
                    check(isinstance(got.get(name), int) and 0 <= got[name] < 2**32, f"{where}: random seed resolved")
                else:
                    check(got.get(name) == default, f"{where}: default seed", str(got.get(name)))
            elif not required:
                if default is None:
                    check(name not in got, f"{where}: no default -> absent", str(got.get(name)))
                else:
                    check(got.get(name) == default, f"{where}: default applied", f"{got.get(name)!r} vs {default!r}")
            # openapi agrees
            p = props[name]
            if default is not None and typ != SEED:
                check(p.get("default") == default, f"{where}: openapi default", str(p.get("default")))
            if lo is not None:
                check(p.get("minimum") == lo and p.get("maximum") == hi, f"{where}: openapi range")
            if enum is not None:
                check(p.get("enum") == enum, f"{where}: openapi enum")
            # boundaries accepted, outside rejected with a message naming param + range
            if lo is not None:
                for v in (lo, hi):
                    r = validate(slug, dict(minimal, **{name: v}))
                    check(r.status_code == 200 and r.json()["params"][name] == v, f"{where}={v} accepted", r.text)
                delta = 1 if typ == I else 0.01
                for v in (lo - delta, hi + delta):
                    r = validate(slug, dict(minimal, **{name: v}))
                    e = r.json().get("error", "")
                    check(r.status_code == 400 and f"'{name}'" in e and "range" in e, f"{where}={v} rejected", e)
            if typ == I and enum is not None:
                for v in enum:
                    check(validate(slug, dict(minimal, **{name: v})).status_code == 200, f"{where}={v} accepted")
                r = validate(slug, dict(minimal, **{name: 640}))
                e = r.json().get("error", "")
                check(r.status_code == 400 and f"'{name}'" in e and "512" in e and "768" in e,
                      f"{where}=640 rejected naming the allowed values", e)
            if typ == E:
                for v in enum:
                    check(validate(slug, dict(minimal, **{name: v})).status_code == 200, f"{where}={v!r} accepted")
                r = validate(slug, dict(minimal, **{name: "not-a-choice"}))
                e = r.json().get("error", "")
                check(r.status_code == 400 and f"'{name}'" in e and all(x in e for x in enum),
                      f"{where}: bad enum rejected listing the allowed values", e)
            # wrong type
            wrong = {N: "1.5", I: "7", S: 12, BOOL: "true", E: 3, SEED: "12", IMG: 5}[typ]
            r = validate(slug, dict(minimal, **{name: wrong}))
            e = r.json().get("error", "")
            check(r.status_code == 400 and f"'{name}'" in e, f"{where}: wrong type {wrong!r} rejected", e)
            if typ == I:
                r = validate(slug, dict(minimal, **{name: (lo if lo is not None else enum[0]) + 0.5}))
                check(r.status_code == 400, f"{where}: fractional integer rejected")
            if typ == SEED:
                for v in (-1, None):
                    r = validate(slug, dict(minimal, **{name: v}))
                    check(r.status_code == 200 and r.json()["params"][name] >= 0, f"{where}={v}: random")
                r = validate(slug, dict(minimal, **{name: 98877465625}))
                check(r.status_code == 200 and r.json()["params"][name] == 98877465625, f"{where}: large seed kept")
                r = validate(slug, dict(minimal, **{name: -2}))
                check(r.status_code == 400, f"{where}=-2 rejected")
            if required:
                body = dict(minimal)
                del body[name]
                r = validate(slug, body)
                e = r.json().get("error", "")
                check(r.status_code == 400 and f"missing required parameter '{name}'" in e, f"{where}: required", e)
        r = validate(slug, dict(minimal, typo_param=1))
        check(r.status_code == 400 and "unknown parameter 'typo_param'" in r.json()["error"],
              f"{slug}: unknown parameter rejected")
    # validation charges nothing and queues nothing
    m = requests.get(B + "/healthz").json()
    check(m["queued"] == 0 and m["processing"] == 0, "validate queues nothing")
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.cleanup()
done()
