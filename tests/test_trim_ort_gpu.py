"""The onnxruntime-gpu trimmer's fatbin walk: it finds every cubin entry and zeroes those of other GPUs, nothing else."""

from __future__ import annotations

import struct
from pathlib import Path

from benchmarks.trim_ort_gpu import FATBIN_MAGIC, entries, trim_library

ENTRY_HEADER = 64


def entry(sm: int, payload: bytes) -> bytes:
    header = bytearray(ENTRY_HEADER)
    struct.pack_into("<HHII", header, 0, 2, 0x0101, ENTRY_HEADER, len(payload))
    struct.pack_into("<Q", header, 16, len(payload))
    struct.pack_into("<I", header, 28, sm)
    return bytes(header) + payload


def fatbin(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body


def elf_with_section(name: bytes, data: bytes) -> tuple[bytes, int]:
    """A minimal ELF64 file holding one named section (plus the section-name table); returns it and the data's offset."""
    names = b"\0.shstrtab\0" + name + b"\0"
    data_offset = 64
    names_offset = data_offset + len(data)
    table_offset = names_offset + len(names)
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    struct.pack_into("<Q", header, 0x28, table_offset)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)
    sections = [
        bytes(64),
        struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, names_offset, len(names), 0, 0, 1, 0),
        struct.pack("<IIQQQQIIQQ", 11, 1, 0, 0, data_offset, len(data), 0, 0, 8, 0),
    ]
    return bytes(header) + data + names + b"".join(sections), data_offset


def test_walks_every_entry_and_zeroes_only_other_architectures(tmp_path: Path) -> None:
    sm80, sm120, sm75 = b"\x11" * 32, b"\x22" * 48, b"\x33" * 16
    section = fatbin(entry(80, sm80), entry(120, sm120)) + bytes(8) + fatbin(entry(75, sm75))  # padding between fatbins
    elf, offset = elf_with_section(b".nv_fatbin", section)
    found = entries(elf)
    assert [(sm, padded) for _, padded, _, sm in found] == [(80, 32), (120, 48), (75, 16)]
    assert [elf[p : p + n] for p, n, _, _ in found] == [sm80, sm120, sm75]

    trimmed = bytearray(elf)
    counts = trim_library(trimmed, 90, tmp_path / "scratch.cubin")
    assert counts == {"other_arch": 3, "unused": 0, "kept": 0, "kept_bytes": 0}
    assert all(trimmed[p : p + n] == bytes(n) for p, n, _, _ in found)
    headers_and_rest = [i for i in range(len(elf)) if not any(p <= i < p + n for p, n, _, _ in found)]
    assert all(trimmed[i] == elf[i] for i in headers_and_rest)  # entry headers, fatbin headers, ELF tables untouched
    assert offset == found[0][0] - 16 - ENTRY_HEADER
