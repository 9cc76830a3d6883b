"""Bodies of the hostile corpus: generators for the big ones (made at run time) and the builder of the small committed files.

Every function named by a corpus entry's ``generator`` takes no argument and returns the request body as bytes.
``write_files()`` (``python tests/hostile/generators.py``) rebuilds ``tests/hostile/files/`` deterministically.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FILES = Path(__file__).parent / "files"
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MODEL_FIELD_GRAPH = 7  # ModelProto.graph
GRAPH_FIELD_NODE = 1  # GraphProto.node


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="archcast-hostile")
    model.ir_version = 8
    return model


def small_conv_net() -> onnx.ModelProto:
    """x(1,3,32,32) -> Conv 3x3 (3->8) -> Relu -> GlobalAveragePool: a valid model the service answers with 200."""
    weight = numpy_helper.from_array(np.full((8, 3, 3, 3), 0.01, dtype=np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 1, 1])
    return _model(nodes, [x], [y], [weight])


def _external(name: str, dims: list[int], location: str) -> onnx.TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * math.prod(dims)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def external_weight_model(location: str) -> onnx.ModelProto:
    """The small conv net with its weight stored as external data at ``location``."""
    model = small_conv_net()
    del model.graph.initializer[:]
    model.graph.initializer.append(_external("w", [8, 3, 3, 3], location))
    return model


def external_constant_model(location: str) -> onnx.ModelProto:
    """A Constant node whose value tensor is external data at ``location`` (shape inference would load it)."""
    nodes = [
        helper.make_node("Constant", [], ["k"], value=_external("k_value", [1, 3, 1, 1], location)),
        helper.make_node("Add", ["x", "k"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    return _model(nodes, [x], [y])


def _relu_model(shape: list[int]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])


def cyclic_model() -> onnx.ModelProto:
    """a = Add(x, b); b = Relu(a): each node reads the other's output."""
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Relu", ["a"], ["y"], name="out"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    return _model(nodes, [x], [y])


def constant_of_shape_model(side: int) -> onnx.ModelProto:
    """A 143-byte model: an int64 ConstantOfShape of shape [side, side] (symbolic inference used to fill it with ones)."""
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([side, side], np.int64), "s")),
        helper.make_node("ConstantOfShape", ["shape"], ["y"], value=numpy_helper.from_array(np.array([1], np.int64), "v")),
    ]
    return _model(nodes, [], [helper.make_tensor_value_info("y", TensorProto.INT64, None)])


# ---- generators named by corpus entries (big bodies, made at run time) ----


def onnx_million_nodes() -> bytes:
    """A valid model plus 1,000,000 more Relu nodes, appended at the protobuf level (~14 MB, built in milliseconds)."""
    node = _field(GRAPH_FIELD_NODE, helper.make_node("Relu", ["x"], ["y"]).SerializeToString())
    return small_conv_net().SerializeToString() + _field(MODEL_FIELD_GRAPH, node * 1_000_000)


def onnx_oversized() -> bytes:
    """2 MiB of a valid model followed by padding: over the corpus entry's 1 MiB ARCHCAST_MAX_ONNX_BYTES."""
    return small_conv_net().SerializeToString().ljust(2 * 1024 * 1024, b"\0")


def _function_model(functions: list[onnx.FunctionProto], call: str) -> bytes:
    """x(1,8) -> one call of the local function ``call`` (domain "local") -> y."""
    model = _model(
        [helper.make_node(call, ["x"], ["y"], domain="local")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model.opset_import.append(helper.make_opsetid("local", 1))
    model.functions.extend(functions)
    return model.SerializeToString()


def _calls(name: str, callee: str, times: int) -> onnx.FunctionProto:
    nodes = [helper.make_node(callee, ["x" if k == 0 else f"t{k - 1}"], [f"t{k}"], domain="local") for k in range(times)]
    nodes.append(helper.make_node("Identity", [f"t{times - 1}"], ["y"]))
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    return helper.make_function("local", name, ["x"], ["y"], nodes, opsets)


def onnx_function_cycle() -> bytes:
    """Local functions A and B calling each other: an inliner would recurse forever."""
    return _function_model([_calls("A", "B", 1), _calls("B", "A", 1)], "A")


def onnx_function_bomb() -> bytes:
    """Twelve levels of local functions, each calling the next ten times: 10^12 nodes once inlined, from ~3 kB."""
    relu = helper.make_function("local", "F0", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])],
                                [helper.make_opsetid("", 17)])  # fmt: skip
    return _function_model([relu, *(_calls(f"F{k}", f"F{k - 1}", 10) for k in range(1, 13))], "F12")


def json_huge_dag() -> bytes:
    """One generic graph with 100,002 nodes in a chain (~2.2 MB, under the 4 MiB body limit)."""
    n = 100_000
    arch = {"space": "graph", "nodes": ["input", *["none"] * n, "output"], "edges": [[i, i + 1] for i in range(n + 1)]}
    return json.dumps({"architectures": [arch]}).encode()


def json_deeply_nested() -> bytes:
    """100,000 levels of '[' (and the matching ']'): deeper than any recursive JSON decoder allows."""
    return b"[" * 100_000 + b"]" * 100_000


def json_oversized() -> bytes:
    """A valid request padded with spaces to 64 KiB: over the corpus entry's 16 KiB ARCHCAST_MAX_BODY_BYTES."""
    return json.dumps({"architectures": [{"space": "nb201", "arch": NB201}]}).encode().ljust(64 * 1024)


# ---- the small committed files ----


def _json(body: object) -> bytes:
    return json.dumps(body, indent=1).encode() + b"\n"


def committed_files() -> dict[str, bytes]:
    """Name -> bytes of every file under tests/hostile/files/."""
    good = small_conv_net().SerializeToString()
    single = {"architectures": [{"space": "nb201", "arch": NB201}]}
    boundary = "hostileboundary"
    multipart = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"; filename=\"m.onnx\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + good + f"\r\n--{boundary}--\r\n".encode()
    return {
        "good.onnx": good,
        "truncated.onnx": good[: len(good) // 2],
        "random.onnx": random.Random(0).randbytes(512),
        "empty.onnx": b"",
        "external_dotdot.onnx": external_weight_model("../../etc/passwd").SerializeToString(),
        "external_absolute.onnx": external_weight_model("/etc/passwd").SerializeToString(),
        "external_constant.onnx": external_constant_model("/etc/passwd").SerializeToString(),
        "cyclic.onnx": cyclic_model().SerializeToString(),
        "constant_of_shape_bomb.onnx": constant_of_shape_model(100_000).SerializeToString(),
        "giant_dims.onnx": _relu_model([1, 3, 1_000_000_000, 1_000_000_000]).SerializeToString(),
        "zero_dim.onnx": _relu_model([1, 3, 0, 32]).SerializeToString(),
        "negative_dim.onnx": _relu_model([1, 3, -7, 32]).SerializeToString(),
        "multipart_without_file.bin": multipart,
        "onnx_as_json.json": _json({"model": "bmV0"}),
        "cyclic_dag.json": _json({"architectures": [{"space": "graph", "nodes": ["input", "nor_conv_3x3", "nor_conv_1x1",
                                                                                 "output"],
                                                     "edges": [[0, 1], [1, 2], [2, 1], [2, 3]]}]}),
        "nan.json": b'{"architectures": [{"space": "nb201", "index": NaN}]}\n',
        "infinity.json": b'{"architectures": [{"space": "nb101", "matrix": [[0, Infinity], [0, 0]], '
                         b'"ops": ["input", "output"]}]}\n',
        "unknown_space.json": _json({"architectures": [{"space": "proxylessnas", "arch": "x"}]}),
        "unknown_op_nb201.json": _json({"architectures": [{"space": "nb201",
                                                           "arch": NB201.replace("avg_pool_3x3", "conv_7x7")}]}),
        "unknown_op_graph.json": _json({"architectures": [{"space": "graph", "nodes": ["input", "conv_7x7", "output"],
                                                           "edges": [[0, 1], [1, 2]]}]}),
        "unknown_target.json": _json({**single, "targets": ["top5_accuracy"]}),
        "unknown_predictor.json": _json({**single, "predictor": "nb999"}),
        "empty_batch.json": _json({"architectures": []}),
        "batch_of_4.json": _json({"architectures": single["architectures"] * 4}),
        "malformed.json": b'{"architectures": [{"space": "nb201", "arch": \n',
        "form.txt": b"architectures=nb201",
        "single.json": _json(single),
        "calibrate_identical.json": _json(_calibration([NB201] * 10)),
        "calibrate_unknown_base.json": _json(_calibration(NB201_CELLS) | {"base": "nb999"}),
        "calibrate_huge_latency.json": _json(_calibration(NB201_CELLS, latency_ms=1e300)),
    }


NB201_CELLS = [NB201.replace("nor_conv_3x3~0|+", f"{op}~0|+", 1) for op in ("none", "skip_connect", "nor_conv_1x1",
               "nor_conv_3x3", "avg_pool_3x3")] * 2  # fmt: skip


def _calibration(archs: list[str], latency_ms: float = 5.0) -> dict:
    measurements = [{"architecture": {"space": "nb201", "arch": a}, "latency_ms": latency_ms + i} for i, a in enumerate(archs)]
    return {"device": "hostile-phone", "measurements": measurements}


def calibrate_too_many() -> bytes:
    """600 measurements, over the default ARCHCAST_MAX_CALIBRATION_SAMPLES of 500."""
    return _json(_calibration(NB201_CELLS * 60))


def write_files(directory: Path = FILES) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in committed_files().items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    write_files()
