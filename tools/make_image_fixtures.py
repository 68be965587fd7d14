#!/usr/bin/env python3
"""Writes the small image fixtures of tests/datasets/test_image.cpp to tests/data/datasets/images/.

The PNGs are written here byte by byte (zlib + CRC, no image library), so the decoder under test
is checked against an encoder that shares no code with it; the JPEGs come from PIL (libjpeg).
Pixel values follow formulas the C++ test recomputes:
  8-bit PNG   value(x, y, c) = (37 x + 71 y + 101 c) mod 256    (7 wide, 5 high)
  16-bit PNG  value(x, y, c) = (9001 x + 4099 y + 12345 c) mod 65536, the decoder keeps value >> 8
  alpha       (50 + 13 x + 29 y) mod 256 (must be dropped, not blended)
  palette PNG PALETTE[(x + 2 y) mod 4]
  JPEG        smooth: value(x, y, c) = 20 + 6 x + 5 y + 30 c           (16 x 12, at most 225)
Run with /usr/bin/python3 (PIL) from the repository root.
"""
import os
import struct
import zlib

from PIL import Image

OUT = os.path.join("tests", "data", "datasets", "images")
W, H = 7, 5
PALETTE = [(255, 0, 0), (0, 128, 255), (12, 200, 34), (250, 250, 5)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path, width, height, bit_depth, colour_type, rows):
    """rows: list of bytes, one per row, without the filter byte (filter 0 is added)."""
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9))
    data += chunk(b"IEND", b"")
    with open(os.path.join(OUT, path), "wb") as f:
        f.write(data)


def v8(x, y, c):
    return (37 * x + 71 * y + 101 * c) % 256


def v16(x, y, c):
    return (9001 * x + 4099 * y + 12345 * c) % 65536


def alpha(x, y):
    return (50 + 13 * x + 29 * y) % 256


def main():
    os.makedirs(OUT, exist_ok=True)
    # colour type 0 grey, 4 grey+alpha, 2 RGB, 6 RGBA; 8 and 16 bits.
    png("grey8.png", W, H, 8, 0, [bytes(v8(x, y, 0) for x in range(W)) for y in range(H)])
    png("grey_alpha8.png", W, H, 8, 4,
        [bytes(b for x in range(W) for b in (v8(x, y, 0), alpha(x, y))) for y in range(H)])
    png("rgb8.png", W, H, 8, 2,
        [bytes(v8(x, y, c) for x in range(W) for c in range(3)) for y in range(H)])
    png("rgba8.png", W, H, 8, 6,
        [bytes(b for x in range(W) for b in (v8(x, y, 0), v8(x, y, 1), v8(x, y, 2), alpha(x, y)))
         for y in range(H)])
    png("rgb16.png", W, H, 16, 2,
        [b"".join(struct.pack(">H", v16(x, y, c)) for x in range(W) for c in range(3))
         for y in range(H)])
    png("grey16.png", W, H, 16, 0,
        [b"".join(struct.pack(">H", v16(x, y, 0)) for x in range(W)) for y in range(H)])

    # JPEGs (PIL/libjpeg): RGB baseline 4:4:4 q100, progressive, greyscale.
    jw, jh = 16, 12
    rgb = Image.new("RGB", (jw, jh))
    rgb.putdata([tuple(20 + 6 * x + 5 * y + 30 * c for c in range(3))
                 for y in range(jh) for x in range(jw)])
    rgb.save(os.path.join(OUT, "rgb_q100.jpg"), quality=100, subsampling=0)
    rgb.save(os.path.join(OUT, "rgb_progressive.jpg"), quality=100, subsampling=0,
             progressive=True)
    grey = Image.new("L", (jw, jh))
    grey.putdata([20 + 6 * x + 5 * y for y in range(jh) for x in range(jw)])
    grey.save(os.path.join(OUT, "grey_q100.jpg"), quality=100)

    # Palette PNG (colour type 3, PIL): index (x + 2 y) mod 4 into PALETTE.
    pal = Image.new("P", (W, H))
    pal.putpalette([c for rgb in PALETTE for c in rgb])
    pal.putdata([(x + 2 * y) % 4 for y in range(H) for x in range(W)])
    pal.save(os.path.join(OUT, "palette.png"))
    # 4:2:0 JPEG (PIL's default subsampling at quality 75), for the fuzzer's seeds only.
    rgb.save(os.path.join("fuzz", "corpus", "fuzz_image", "rgb_420_q75.jpg"), quality=75)

    # Formats we refuse (by name).
    small = Image.new("RGB", (4, 3), (10, 20, 30))
    small.save(os.path.join(OUT, "tiny.gif"))
    small.save(os.path.join(OUT, "tiny.bmp"))


if __name__ == "__main__":
    main()
