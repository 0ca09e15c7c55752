#!/usr/bin/env python3
"""Zero the ICU data blob (icudt*_dat, ~34 MB) that static Foundation links into a Kiln binary.

Used by `GPU_CHECK_BLANK_ICU=1 tools/gpu-check --stage` on kiln-gpu-probe, whose code paths (ONNX
import, the reference executor, CUDA, JSON and .npy files, String(format:), tokenizing with the
Swift standard library's own Unicode tables) did not use ICU in the checks below; the blob is ~8
of the ~15 MB the xz-compressed probe takes of the 64 MiB a device call may carry. The blob's
32-byte header is kept and everything after it zeroed (ICU would find an empty table of contents).

Checked on the CPU machine with a static test program: ISO8601FormatStyle, String(format:),
JSONSerialization/JSONEncoder and String trimming/splitting/lowercasing give the same output
blanked; ISO8601DateFormatter crashes. A blanked `kiln` tokenized identically but crashed in
`kiln build` (Duration formatting of its progress lines), so kiln is never blanked. The blanked
probe has not yet run on a GPU.

usage: blank_icu_data.py UNSTRIPPED_BINARY STRIPPED_BINARY   (the second is rewritten in place)
"""
import subprocess
import sys

HEADER_BYTES = 32


def icu_symbol(binary):
    """(virtual address, size) of the icudt*_dat symbol, or None."""
    listing = subprocess.run(["nm", "-S", binary], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3].startswith("icudt") and fields[3].endswith("_dat"):
            return int(fields[0], 16), int(fields[1], 16)
    return None


def file_offset(binary, address):
    """The file offset of a virtual address inside one of the binary's LOAD segments."""
    headers = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            offset, vaddr, filesz = int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)
            if vaddr <= address < vaddr + filesz:
                return offset + address - vaddr
    return None


def main():
    unstripped, stripped = sys.argv[1], sys.argv[2]
    symbol = icu_symbol(unstripped)
    if symbol is None:
        print(f"{unstripped}: no ICU data symbol; left as is")
        return
    address, size = symbol
    offset = file_offset(stripped, address)
    data = bytearray(open(stripped, "rb").read())
    # An ICU data file begins with its header size and the magic bytes 0xda 0x27.
    if offset is None or data[offset + 2:offset + 4] != b"\xda\x27":
        print(f"{stripped}: ICU data not where the symbol table says; left as is")
        return
    data[offset + HEADER_BYTES:offset + size] = bytes(size - HEADER_BYTES)
    open(stripped, "wb").write(data)
    print(f"{stripped}: zeroed {size - HEADER_BYTES} bytes of ICU data")


if __name__ == "__main__":
    main()
