"""Gzip bombs for the tests, built in a fraction of a second instead of compressing 1 GiB."""

from __future__ import annotations

import struct
import zlib

_MIB = bytes(1 << 20)


def gzip_of_zeros(mebibytes: int) -> bytes:
    """A valid single-member gzip stream of ``mebibytes`` MiB of zeros (about 1 KB per MiB).

    Once deflate's window is all zeros, every further MiB compresses (with a sync flush) to the
    same bytes, so the stream is the first block, that block repeated, and a trailer whose CRC
    and length are those of the whole input.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(_MIB) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeated = compressor.compress(_MIB) + compressor.flush(zlib.Z_SYNC_FLUSH)
    final_block = compressor.flush()[:-8]  # the empty last block, without its (wrong) trailer
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(_MIB, crc)
    trailer = struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)
    return first + repeated * (mebibytes - 1) + final_block + trailer
