"""ONNX test models for convnet's importer, built with onnx.helper (no PyTorch), with
ONNX Runtime's outputs as the reference.

    python3 onnx_cases.py OUTDIR     # writes NAME.onnx, NAME.in.npy, NAME.out.npy per case
    python3 onnx_cases.py --run MODEL IN OUT [MODEL IN OUT ...]   # ONNX Runtime on given files

Every operator the importer reads appears in at least one case; the bad cases are
models the importer must refuse with a clear error.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)


def w(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


class G:
    """A graph under construction: nodes, initializers, one float input."""

    def __init__(self, name, shape):
        self.name = name
        self.shape = shape
        self.nodes = []
        self.inits = []
        self.k = 0

    def const(self, array, name=None):
        self.k += 1
        name = name or f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, name=None, outputs=1, **attrs):
        self.k += 1
        name = name if name is not None else f"{op_type.lower()}_{self.k}"
        outs = [f"{name}_out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def model(self, out, opset=17, batch="N"):
        dims = [batch] + list(self.shape[1:])
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
        y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, self.name, [x], [y], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8 if opset <= 17 else 10
        return m


def conv(g, x, cin, cout, k, bias=True, **attrs):
    kh, kw = (k, k) if isinstance(k, int) else k
    groups = attrs.get("group", 1)
    ins = [x, g.const(w(cout, cin // groups, kh, kw))]
    if bias:
        ins.append(g.const(w(cout)))
    return g.op("Conv", ins, **attrs)


def case_conv_pool_gemm():
    g = G("conv_pool_gemm", [2, 4, 13, 11])
    y = conv(g, "x", 4, 6, 3, pads=[1, 0, 2, 1], strides=[2, 1])
    y = g.op("Relu", [y])
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    y = conv(g, y, 6, 8, 3, bias=False, group=2, dilations=[2, 1], pads=[2, 1, 2, 1])
    y = g.op("LeakyRelu", [y], alpha=0.1)
    y = g.op("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    z = g.op("GlobalAveragePool", [y])
    z = g.op("Flatten", [z], axis=1)
    z = g.op("Gemm", [z, g.const(w(5, 8)), g.const(w(5))], transB=1)
    return g.model(g.op("Softmax", [z], axis=-1))


def case_flatten_order():
    # Flatten of 2x3x3 maps: the fully connected weights must follow NCHW order.
    g = G("flatten_order", [3, 2, 3, 3])
    y = g.op("Flatten", ["x"])
    y = g.op("Gemm", [y, g.const(w(18, 4)), g.const(w(1, 4))], alpha=0.7, beta=1.5)
    return g.model(g.op("Tanh", [y]))


def case_bn_lrn_dropout():
    g = G("bn_lrn_dropout", [2, 3, 8, 8])
    y = conv(g, "x", 3, 7, 3, pads=[1, 1, 1, 1])
    c = 7
    y = g.op("BatchNormalization", [y, g.const(w(c) + 1), g.const(w(c)), g.const(w(c)),
                                    g.const(np.abs(w(c)) + 0.5)], epsilon=1e-3)
    y = g.op("LRN", [y], size=5, alpha=0.3, beta=0.75, bias=2.0)
    y = g.op("Sigmoid", [y])
    y = g.op("Identity", [y])
    y = g.op("Dropout", [y, g.const(np.array(0.3, dtype=np.float32))])
    y = g.op("GlobalMaxPool", [y])
    y = g.op("Reshape", [y, g.const(np.array([0, -1], dtype=np.int64))])
    y = g.op("MatMul", [y, g.const(w(7, 5))])
    y = g.op("Add", [y, g.const(w(5))])
    y = g.op("Tanh", [y])
    y = g.op("BatchNormalization", [y, g.const(w(5) + 1), g.const(w(5)), g.const(w(5)),
                                    g.const(np.abs(w(5)) + 0.5)])
    return g.model(g.op("LogSoftmax", [y], axis=1))


def case_concat_sum():
    g = G("concat_sum", [2, 3, 7, 7])
    a = g.op("Relu", [conv(g, "x", 3, 4, 3, pads=[1, 1, 1, 1])])
    b = g.op("Relu", [conv(g, "x", 3, 2, 1)])
    y = g.op("Concat", [a, b], axis=1)
    y = conv(g, y, 6, 6, 3, pads=[1, 1, 1, 1])
    s = g.op("Add", [y, conv(g, y, 6, 6, 1)])
    s = g.op("Sum", [s, y, g.op("Tanh", [s])])
    z = g.op("GlobalAveragePool", [s])
    z = g.op("Flatten", [z])
    z1 = g.op("Gemm", [z, g.const(w(3, 6)), g.const(w(3))], transB=1)
    z2 = g.op("Gemm", [z, g.const(w(6, 2))])
    z = g.op("Concat", [z1, z2], axis=1)
    return g.model(g.op("Softmax", [z], axis=1))


def case_pad_fold():
    g = G("pad_fold", [2, 3, 9, 10])
    y = g.op("Relu", [conv(g, "x", 3, 5, 3)])
    p = g.op("Pad", [y, g.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64))])
    m = g.op("MaxPool", [p], kernel_shape=[3, 3], strides=[2, 2])
    p2 = g.op("Pad", [m, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)),
                      g.const(np.array(0.0, dtype=np.float32))], mode="constant")
    c = conv(g, p2, 5, 4, 3, pads=[0, 1, 0, 1])
    p3 = g.op("Pad", [c, g.const(np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=np.int64))])
    a = g.op("AveragePool", [p3], kernel_shape=[2, 2], strides=[1, 1])
    a2 = g.op("AveragePool", [c], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              count_include_pad=1)
    return g.model(g.op("Add", [g.op("GlobalAveragePool", [a]), g.op("GlobalAveragePool", [a2])]))


def case_conv_transpose():
    g = G("conv_transpose", [2, 4, 5, 6])
    y = g.op("ConvTranspose", ["x", g.const(w(4, 3, 3, 3)), g.const(w(3))], strides=[2, 2],
             pads=[1, 1, 1, 1], output_padding=[1, 1])
    y = g.op("Relu", [y])
    y = g.op("ConvTranspose", [y, g.const(w(3, 2, 4, 2))], strides=[1, 2], group=1,
             pads=[0, 1, 2, 0])
    y = g.op("ConvTranspose", [y, g.const(w(2, 1, 3, 3)), g.const(w(2))], group=2)
    return g.model(y)


def case_same_pads():
    g = G("same_pads", [2, 3, 11, 8])
    y = conv(g, "x", 3, 4, 3, strides=[2, 2], auto_pad="SAME_UPPER")
    y = conv(g, y, 4, 4, (2, 3), strides=[1, 1], auto_pad="SAME_LOWER")
    y = g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    y = conv(g, y, 4, 2, 1, auto_pad="VALID")
    return g.model(y)


def case_opset11():
    g = G("opset11", [2, 3, 6, 6])
    y = g.op("Relu", [conv(g, "x", 3, 4, 3)])
    y = g.op("Pad", [y, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64))])
    y = g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = g.op("Dropout", [y], ratio=0.2)
    y = g.op("Flatten", [y])
    y = g.op("Gemm", [y, g.const(w(3, 36)), g.const(w(3))], transB=1)
    return g.model(g.op("Softmax", [y]), opset=11)


def case_opset21():
    m = case_conv_pool_gemm()
    m.graph.name = "opset21"
    m.opset_import[0].version = 21
    m.ir_version = 10
    return m


def case_fixed_batch_reshape():
    g = G("fixed_batch_reshape", [2, 2, 3, 3])
    y = g.op("Relu", [conv(g, "x", 2, 3, 2)])
    y = g.op("Reshape", [y, g.const(np.array([2, 12], dtype=np.int64))])
    y = g.op("Gemm", [y, g.const(w(12, 4))])
    return g.model(y, batch=2)


CASES = [case_conv_pool_gemm, case_flatten_order, case_bn_lrn_dropout, case_concat_sum,
         case_pad_fold, case_conv_transpose, case_same_pads, case_opset11, case_opset21,
         case_fixed_batch_reshape]


def bad_unsupported():
    g = G("bad_unsupported", [1, 2, 4, 4])
    y = conv(g, "x", 2, 2, 1)
    y = g.op("Mul", [y, g.const(np.float32(2.0))], name="scale_by_two")
    return g.model(y)


def bad_lrn_chain():
    # How torch.onnx.export writes LocalResponseNorm: elementary ops around an AveragePool.
    g = G("bad_lrn_chain", [1, 4, 5, 5])
    sq = g.op("Mul", ["x", "x"], name="lrn_square")
    u = g.op("Unsqueeze", [sq, g.const(np.array([1], dtype=np.int64))], name="lrn_unsqueeze")
    return g.model(u)


def bad_weight_shape():
    g = G("bad_weight_shape", [1, 3, 5, 5])
    y = g.op("Conv", ["x", g.const(w(4, 2, 3, 3))], name="conv_wrong")
    return g.model(y)


def bad_escape(outdir):
    g = G("bad_escape", [1, 2, 4, 4])
    y = conv(g, "x", 2, 2, 1)
    m = g.model(y)
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "../outside.bin"), ("offset", "0"), ("length", "16")]:
        e = t.external_data.add()
        e.key, e.value = k, v
    return m


def run(model, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def main():
    if sys.argv[1] == "--run":
        args = sys.argv[2:]
        for model, inp, out in zip(args[0::3], args[1::3], args[2::3]):
            np.save(out, run(model, np.load(inp)).astype(np.float32))
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for case in CASES:
        m = case()
        name = m.graph.name
        path = os.path.join(out, name + ".onnx")
        onnx.save(m, path)
        shape = [d.dim_value or 2 for d in m.graph.input[0].type.tensor_type.shape.dim]
        x = rng.standard_normal(shape).astype(np.float32)
        np.save(os.path.join(out, name + ".in.npy"), x)
        np.save(os.path.join(out, name + ".out.npy"), run(path, x).astype(np.float32))
    # The same model with its weights in an external data file.
    m = case_concat_sum()
    m.graph.name = "external"
    ext = os.path.join(out, "ext")
    os.makedirs(ext, exist_ok=True)
    onnx.save_model(m, os.path.join(ext, "external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.weights", size_threshold=0)
    x = rng.standard_normal([2, 3, 7, 7]).astype(np.float32)
    np.save(os.path.join(ext, "external.in.npy"), x)
    np.save(os.path.join(ext, "external.out.npy"),
            run(os.path.join(ext, "external.onnx"), x).astype(np.float32))
    for bad in [bad_unsupported(), bad_lrn_chain(), bad_weight_shape(), bad_escape(out)]:
        onnx.save(bad, os.path.join(out, bad.graph.name + ".onnx"))


if __name__ == "__main__":
    main()
