"""Make onnxruntime-gpu's package small enough to travel to a lent GPU machine (64 MiB for the whole working tree).

    python -m benchmarks.trim_ort_gpu --wheel onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl \\
        --out .whl/ort_sm90.tar.xz

The wheel is 256 MB, most of it the CUDA provider library's device code: zstd-compressed cubins for sm_75 ... sm_120,
of which the sm_90 ones alone are 77 MB. This keeps the library's layout (no relinking) and zeroes, in its
``.nv_fatbin`` section, the payload of every cubin that is not for ``--arch`` and of every ``--arch`` module whose
kernels are only those of ops these graphs never run (grouped/mixed-input CUTLASS GEMMs for MoE and int4/fp8 weights,
flash attention, which onnxruntime runs in fp16/bf16 only, LLM kernels); zeroes compress to nothing. The CUDA runtime
loads modules lazily (``CUDA_MODULE_LOADING=LAZY``), so a zeroed module only fails if one of its kernels is launched.
The C API library, the TensorRT provider and the Python transformer/quantization tools are left out (the Python
module and the CUDA provider link neither). Needs ``zstd``, ``readelf`` and ``c++filt`` on PATH.
"""

from __future__ import annotations

import argparse
import io
import re
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
CUDA_LIBRARY = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
LEFT_OUT = (
    "onnxruntime/capi/libonnxruntime.so",
    "onnxruntime/capi/libonnxruntime_providers_tensorrt.so",
    "onnxruntime/transformers/",
    "onnxruntime/quantization/",
    "onnxruntime/ThirdPartyNotices.txt",
)
# A module is dropped when every kernel in it matches one of these (demangled names). Modules with cub's EmptyKernel
# stay: cub asks the runtime for that kernel's attributes to learn the PTX version.
UNUSED_KERNELS = re.compile(
    r"cutlass::device_kernel<cutlass::gemm::kernel::GemmUniversal<cutlass::gemm::GroupProblemShape"
    r"|onnxruntime::flash::|MoeFC|fused_moe|onnxruntime::llm::|deep_gemm|GemmFpAIntB|ClearSplitKSemaphores"
    r"|_ZN7cutlass13device_kernelINS_4gemm6kernel13GemmUniversalINS1_17GroupProblemShape"  # c++filt leaves these mangled
    r"|contrib::cuda::\(anonymous namespace\)::(ConvertOutput|QuantizeActivation|PackWeightScales)"  # fp8 grouped GEMM's
)


def section(elf: bytes, name: bytes) -> tuple[int, int]:
    """(offset, size) of an ELF64 section."""
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    entsize, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * entsize) for i in range(count)]
    names_offset = headers[names_index][4]
    for header in headers:
        start = names_offset + header[0]
        if elf[start : elf.index(b"\0", start)] == name:
            return header[4], header[5]
    raise ValueError(f"no section {name!r}")


def entries(elf: bytes) -> list[tuple[int, int, int, int]]:
    """Each fatbin entry of the ``.nv_fatbin`` section: (payload offset, padded size, compressed size, sm)."""
    offset, size = section(elf, b".nv_fatbin")
    found, position, end = [], offset, offset + size
    while position < end:
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", elf, position)
        if magic != FATBIN_MAGIC:  # alignment padding between fatbins
            position += 8
            continue
        entry, entries_end = position + header_size, position + header_size + fat_size
        while entry < entries_end:
            _, _, entry_header, padded = struct.unpack_from("<HHII", elf, entry)
            compressed = struct.unpack_from("<Q", elf, entry + 16)[0]
            sm = struct.unpack_from("<I", elf, entry + 28)[0]
            found.append((entry + entry_header, padded, compressed, sm))
            entry += entry_header + padded
        position = entries_end
    return found


def kernels(cubin_zstd: bytes, scratch: Path) -> list[str]:
    """Demangled kernel names of one zstd-compressed cubin."""
    cubin = subprocess.run(["zstd", "-d", "-c"], input=cubin_zstd, capture_output=True, check=True).stdout
    scratch.write_bytes(cubin)
    sections = subprocess.run(["readelf", "-SW", str(scratch)], capture_output=True, text=True, check=True).stdout
    mangled = re.findall(r"\]\s+\.text\.(\S+)", sections)
    return subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True).stdout.splitlines()


def trim_library(elf: bytearray, arch: int, scratch: Path) -> dict[str, int]:
    counts = {"other_arch": 0, "unused": 0, "kept": 0, "kept_bytes": 0}
    for payload, padded, compressed, sm in entries(bytes(elf)):
        if sm == arch:
            names = kernels(bytes(elf[payload : payload + compressed]), scratch)
            if not names or not all(UNUSED_KERNELS.search(n) for n in names):
                counts["kept"] += 1
                counts["kept_bytes"] += padded
                continue
            counts["unused"] += 1
        else:
            counts["other_arch"] += 1
        elf[payload : payload + padded] = bytes(padded)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a .tar.xz to extract into a PYTHONPATH folder")
    parser.add_argument("--arch", type=int, default=90, help="the GPU's compute capability x 10 (H100/H200: 90)")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel, tarfile.open(args.out, "w:xz", preset=9) as out:
        for item in wheel.infolist():
            if item.is_dir() or item.filename.startswith(LEFT_OUT):
                continue
            data = wheel.read(item)
            if item.filename == CUDA_LIBRARY:
                library = bytearray(data)
                counts = trim_library(library, args.arch, args.out.with_suffix(".cubin"))
                args.out.with_suffix(".cubin").unlink(missing_ok=True)
                print(f"{CUDA_LIBRARY}: {counts}")
                data = bytes(library)
            info = tarfile.TarInfo(item.filename)
            info.size, info.mode = len(data), (item.external_attr >> 16) or 0o644
            out.addfile(info, io.BytesIO(data))
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
