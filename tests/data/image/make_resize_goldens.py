"""Regenerate the Lanczos resize goldens (needs Pillow; not run by the tests).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install pillow
    /tmp/v/bin/python tests/data/image/make_resize_goldens.py tests/data/image

Writes src_rgb.png, src_rgba.png and resize_<src>_<W>x<H>.png, each the
output of PIL.Image.resize((W, H), Image.LANCZOS) on the source.
"""
import random
import sys

from PIL import Image

SIZES = [(16, 12), (80, 61), (50, 10), (5, 3), (37, 64), (64, 29), (1, 1), (200, 7)]


def noise(w, h, mode, seed):
    rnd = random.Random(seed)
    im = Image.new(mode, (w, h))
    n = len(mode)
    px = []
    for y in range(h):
        for x in range(w):
            if mode == "RGBA":
                # smooth-ish colour + hard edges + varied alpha incl. 0 and 255
                a = rnd.choice([0, 255, rnd.randrange(256)])
                px.append(tuple(rnd.randrange(256) for _ in range(3)) + (a,))
            else:
                base = (x * 7 + y * 3) % 256
                px.append(tuple((base + rnd.randrange(-40, 41)) % 256 for _ in range(n)))
    im.putdata(px)
    return im


def main(out):
    srcs = {"rgb": noise(37, 29, "RGB", 1), "rgba": noise(23, 31, "RGBA", 2)}
    for name, im in srcs.items():
        im.save(f"{out}/src_{name}.png")
        for w, h in SIZES:
            im.resize((w, h), Image.LANCZOS).save(f"{out}/resize_{name}_{w}x{h}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
