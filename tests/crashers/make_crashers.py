#!/usr/bin/python3
"""Writes the must-fail decoder inputs in tests/crashers/.

Regenerate (from the repo root):  /usr/bin/python3 tests/crashers/make_crashers.py
Every file here must be REFUSED by fx_decode_file (tests/test_io.c checks it,
with a 64-megapixel limit) and must never crash the fuzz targets
(tests/fuzz/smoke.sh runs each once).  Output is deterministic; keep files small.
"""
import os
import random
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SIG = b"\x89PNG\r\n\x1a\n"


def chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data))


def png(w, h, idat, depth=8, ctype=0):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def tiff(w, h, data, ifd_offset=8, strip_offset=None):
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, None),
               (277, 3, 1), (278, 4, h), (279, 4, len(data))]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, typ, val in entries:
        if tag == 273:
            val = data_at if strip_offset is None else strip_offset
        out += struct.pack("<HHI", tag, typ, 1)
        out += struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val)
    return out + struct.pack("<I", 0) + data


def main():
    rnd = random.Random(1234)
    w, h = 16, 8
    raw = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(w)) for _ in range(h))
    z = zlib.compress(raw)
    good = png(w, h, z)
    files = {}
    files["png_truncated_in_idat.png"] = good[: len(good) // 2]
    files["png_truncated_before_iend.png"] = good[:-12]
    bad = bytearray(good)
    bad[33 + 8 + len(z)] ^= 0xFF  # first byte of the IDAT CRC
    files["png_bad_crc.png"] = bytes(bad)
    files["png_bad_zlib.png"] = png(w, h, z[:2] + b"\x07" + z[3:])  # invalid deflate block type
    files["png_zero_width.png"] = png(0, h, z)
    files["png_huge_dims.png"] = png(60000, 60000, z)  # 3600 MP: over the test limit
    files["png_bad_depth.png"] = png(w, h, z, depth=5)
    files["tiff_bad_ifd_offset.tif"] = tiff(w, h, bytes(w * h), ifd_offset=0x7FFFFF00)
    files["tiff_huge_dims.tif"] = tiff(100000, 100000, bytes(64))
    files["tiff_strip_past_end.tif"] = tiff(w, h, bytes(w * h), strip_offset=1 << 30)
    files["tiff_short_strip.tif"] = tiff(w, h, bytes(10))
    files["tiff_truncated_ifd.tif"] = tiff(w, h, bytes(w * h))[:30]
    files["random_bytes.bin"] = bytes(rnd.randrange(256) for _ in range(1024))
    files["png_sig_then_random.png"] = SIG + bytes(rnd.randrange(256) for _ in range(256))
    for name, data in files.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), HERE))


if __name__ == "__main__":
    main()
