#!/usr/bin/env python3
"""Rebuild a whisper file from its base version and a delta version, by hand.

  wsp-apply-delta.py BASE.wsp DELTA.wspd.gz > NEW.wsp

BASE.wsp is the uncompressed version the delta names as its base (a full version:
`gunzip -c KEY > BASE.wsp`; a delta: the output of this script for it). The base's SHA-256
is checked before, the result's after; on any mismatch nothing is written and the exit status
is 1 with one line on stderr. Python 3 standard library only.

Delta content (gzip of, little-endian): "WSPDELTA" u32 format(1) u32 pageSize u64 baseSize
u64 newSize baseSHA256[32] newSHA256[32] u32 pageCount u32 pageIndex[pageCount], then the
bytes [i*pageSize, min((i+1)*pageSize, newSize)) of the new file for each index i.
"""
import gzip
import hashlib
import struct
import sys

FIXED = 8 + 4 + 4 + 8 + 8 + 32 + 32 + 4


def apply(base, delta):
    """The file `delta` (uncompressed) makes of `base`; raises ValueError."""
    if len(delta) < FIXED or delta[:8] != b"WSPDELTA":
        raise ValueError("not a delta version (no WSPDELTA header)")
    fmt, page, base_size, new_size = struct.unpack_from("<IIQQ", delta, 8)
    base_sha, new_sha = delta[32:64], delta[64:96]
    (count,) = struct.unpack_from("<I", delta, 96)
    if fmt != 1:
        raise ValueError(f"delta format {fmt} is not known to this script")
    if page <= 0 or len(delta) < FIXED + 4 * count:
        raise ValueError("delta header is damaged")
    pages = struct.unpack_from(f"<{count}I", delta, FIXED)
    if len(base) != base_size or hashlib.sha256(base).digest() != base_sha:
        raise ValueError(f"the delta does not apply to this base (it wants {base_size} bytes "
                         f"hashing to {base_sha.hex()[:12]}...)")
    out = bytearray(base[:new_size]) + bytearray(max(0, new_size - len(base)))
    at = FIXED + 4 * count
    last = -1
    for i in pages:
        start = i * page
        if i <= last or start >= new_size:
            raise ValueError("delta page index is not ascending within the file")
        n = min(page, new_size - start)
        if at + n > len(delta):
            raise ValueError("delta is truncated")
        out[start:start + n] = delta[at:at + n]
        at += n
        last = i
    if at != len(delta):
        raise ValueError("delta has bytes past its last page")
    if hashlib.sha256(out).digest() != new_sha:
        raise ValueError(f"the result does not hash to {new_sha.hex()[:12]}...")
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: wsp-apply-delta.py BASE.wsp DELTA.wspd.gz > NEW.wsp\n")
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            base = f.read()
        with gzip.open(sys.argv[2], "rb") as f:
            delta = f.read()
        out = apply(base, delta)
    except (OSError, EOFError, ValueError, struct.error) as e:
        sys.stderr.write(f"wsp-apply-delta.py: {sys.argv[2]}: {e}\n")
        return 1
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
