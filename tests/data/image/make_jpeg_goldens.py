"""Regenerate the JPEG decode goldens (needs Pillow; not run by the tests).

    /tmp/v13/bin/python tests/data/image/make_jpeg_goldens.py tests/data/image

jpeg_<name>.jpg is written by Pillow; jpeg_<name>.png is what Pillow decodes
it to (converted to RGB), which dg_image_decode must reproduce byte for byte.
exif_<o>.jpg carries EXIF orientation o (1..8); exif_<o>.png is Pillow's
ImageOps.exif_transpose of it.  Also Pillow-written WebP (lossy, lossy with
alpha) and a palette PNG with a transparent index: dec_<name>.<ext> and the
decoded dec_<name>.want.png (RGB, or RGBA when the file has alpha).
"""
import sys

from PIL import Image, ImageOps


def gradient(w, h, mode):
    im = Image.new(mode, (w, h))
    n = len(mode)
    px = [tuple(((x * 11 + y * 7 + c * 60) * (c + 1)) % 256 for c in range(n))
          for y in range(h) for x in range(w)]
    im.putdata([p[0] for p in px] if n == 1 else px)
    return im


def main(out):
    cases = {
        "cmyk": (gradient(24, 16, "CMYK"), {"quality": 90}),
        "rgb420": (gradient(33, 17, "RGB"), {"quality": 85, "subsampling": 2}),
        "rgb444": (gradient(20, 12, "RGB"), {"quality": 95, "subsampling": 0}),
        "gray": (gradient(19, 9, "L"), {"quality": 80}),
        "progressive": (gradient(30, 22, "RGB"), {"quality": 75, "progressive": True}),
    }
    for name, (im, kw) in cases.items():
        path = f"{out}/jpeg_{name}.jpg"
        im.save(path, "JPEG", **kw)
        Image.open(path).convert("RGB").save(f"{out}/jpeg_{name}.png")
    base = gradient(20, 12, "RGB")
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        path = f"{out}/exif_{o}.jpg"
        base.save(path, "JPEG", quality=90, exif=exif.tobytes())
        ImageOps.exif_transpose(Image.open(path)).convert("RGB").save(f"{out}/exif_{o}.png")
    im = gradient(33, 17, "RGB")
    im.save(f"{out}/dec_webp_lossy.webp", "WEBP", quality=80)
    ima = im.convert("RGBA")
    ima.putalpha(Image.linear_gradient("L").resize((33, 17)))
    ima.save(f"{out}/dec_webp_alpha.webp", "WEBP", quality=70)
    pal = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(f"{out}/dec_png_palette_trns.png", transparency=3)
    for name, ext, mode in (("webp_lossy", "webp", "RGB"), ("webp_alpha", "webp", "RGBA"),
                            ("png_palette_trns", "png", "RGBA")):
        Image.open(f"{out}/dec_{name}.{ext}").convert(mode).save(f"{out}/dec_{name}.want.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
