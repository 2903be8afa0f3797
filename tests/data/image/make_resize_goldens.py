"""Regenerate the Lanczos resize goldens (needs Pillow; not run by the tests).

    python3 -m venv /tmp/v12 && /tmp/v12/bin/pip install "pillow<13"
    python3 -m venv /tmp/v13 && /tmp/v13/bin/pip install "pillow>=13,<14"
    /tmp/v12/bin/python tests/data/image/make_resize_goldens.py tests/data/image
    /tmp/v13/bin/python tests/data/image/make_resize_goldens.py tests/data/image

Writes src_rgb.png, src_rgba.png and resize<P>_<src>_<W>x<H>.png, each the
output of PIL.Image.resize((W, H), Image.LANCZOS) on the source, where <P> is
"" for Pillow <= 12 (always horizontal pass first) and "13" for Pillow 13
(vertical pass first when it shrinks much more).  The committed files were
made with Pillow 12.3.0 and 13.0.0.
"""
import random
import sys

from PIL import Image

SIZES = [(16, 12), (80, 61), (50, 10), (5, 3), (37, 64), (64, 29), (1, 1), (200, 7),
         (33, 21), (33, 20), (37, 10), (12, 29), (19, 23)]


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
    import PIL
    prefix = "resize" if int(PIL.__version__.split(".")[0]) < 13 else "resize13"
    srcs = {"rgb": noise(37, 29, "RGB", 1), "rgba": noise(23, 31, "RGBA", 2)}
    for name, im in srcs.items():
        im.save(f"{out}/src_{name}.png")
        for w, h in SIZES:
            im.resize((w, h), Image.LANCZOS).save(f"{out}/{prefix}_{name}_{w}x{h}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
