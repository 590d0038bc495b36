#!/usr/bin/python3
"""Writes the fuzz seed corpora tests/fuzz/corpus_png/ and corpus_tiff/.

Regenerate (from the repo root):  /usr/bin/python3 tests/fuzz/make_corpus.py
Small valid files from Pillow and tifffile covering the layouts the loaders
handle (each < 4 KB); deterministic (fixed seed).  Commit the outputs.
"""
import os
import sys

import numpy as np
import tifffile
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def main():
    pd, td = os.path.join(HERE, "corpus_png"), os.path.join(HERE, "corpus_tiff")
    os.makedirs(pd, exist_ok=True)
    os.makedirs(td, exist_ok=True)
    g8 = rng.integers(0, 256, (12, 9), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (7, 5), dtype=np.uint16)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(g8, "L").save(os.path.join(pd, "gray8.png"))
    Image.fromarray(g16).save(os.path.join(pd, "gray16.png"))
    Image.fromarray(g8 > 100).save(os.path.join(pd, "gray1.png"))
    Image.fromarray(rgb, "RGB").save(os.path.join(pd, "rgb8.png"))
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(os.path.join(pd, "rgba8.png"))
    Image.fromarray(rgb, "RGB").quantize(8).save(os.path.join(pd, "palette.png"))
    # Pillow cannot write Adam7: use the test suite's small PNG encoder.
    sys.path.insert(0, os.path.join(HERE, "..", "py"))
    import test_decode  # noqa: E402  (only its make_png helper)
    with open(os.path.join(pd, "rgb16_adam7.png"), "wb") as f:
        f.write(test_decode.make_png(rng.integers(0, 65536, (9, 11, 3)), 2, 16, interlace=True))
    with open(os.path.join(pd, "gray2_adam7.png"), "wb") as f:
        f.write(test_decode.make_png(rng.integers(0, 4, (10, 13, 1)), 0, 2, interlace=True))

    tifffile.imwrite(os.path.join(td, "gray8_strips.tif"), g8, rowsperstrip=4)
    tifffile.imwrite(os.path.join(td, "gray16_be.tif"), g16, byteorder=">")
    tifffile.imwrite(os.path.join(td, "float32_tiles.tif"), g8[:5, :5].astype(np.float32), tile=(16, 16))
    tifffile.imwrite(os.path.join(td, "rgb8_deflate.tif"), rgb, photometric="rgb", compression="zlib")
    tifffile.imwrite(os.path.join(td, "rgb8_separate.tif"), np.moveaxis(rgb, 2, 0).copy(),
                     photometric="rgb", planarconfig="separate")
    tifffile.imwrite(os.path.join(td, "miniswhite.tif"), g8, photometric="miniswhite")
    Image.fromarray(rgb, "RGB").save(os.path.join(td, "rgb8_lzw.tif"), compression="tiff_lzw")
    Image.fromarray(g8, "L").save(os.path.join(td, "gray8_packbits.tif"), compression="packbits")
    Image.fromarray(np.kron(rgb, np.ones((3, 3, 1), np.uint8)), "RGB").save(
        os.path.join(td, "rgb8_jpeg.tif"), compression="jpeg")
    for d in (pd, td):
        for f in os.listdir(d):
            assert os.path.getsize(os.path.join(d, f)) < 4096, f
    print("wrote", len(os.listdir(pd)), "PNG and", len(os.listdir(td)), "TIFF seeds")


if __name__ == "__main__":
    main()
