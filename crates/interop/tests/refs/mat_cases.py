"""MatConvNet-structured model files for convnet's importer, written with scipy, and
their outputs computed here with numpy in MatConvNet's own layout (H x W x C x N,
filters H x W x Cin x Cout) and semantics, independently of convnet.

    python3 mat_cases.py OUTDIR

writes simplenn.mat (compressed, as MATLAB's -v7), dagnn.mat (uncompressed),
NAME.in.npy (N, C, H, W) and NAME.out.npy (N, C, H, W), and bad .mat files.
"""
import os
import sys

import numpy as np
import scipy.io as sio

rng = np.random.default_rng(11)


def w(*shape, scale=0.4):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---- MatConvNet's blocks in numpy (x: H x W x C x N) ----

def conv(x, f, b, pad=(0, 0, 0, 0), stride=(1, 1), dilate=(1, 1)):
    h, wd, c, n = x.shape
    fh, fw, cin, cout = f.shape
    groups = c // cin
    t, bo, l, r = pad
    xp = np.zeros((h + t + bo, wd + l + r, c, n))
    xp[t:t + h, l:l + wd] = x
    eh, ew = dilate[0] * (fh - 1) + 1, dilate[1] * (fw - 1) + 1
    oh = (h + t + bo - eh) // stride[0] + 1
    ow = (wd + l + r - ew) // stride[1] + 1
    y = np.zeros((oh, ow, cout, n))
    per = cout // groups
    for i in range(oh):
        for j in range(ow):
            ys = i * stride[0] + dilate[0] * np.arange(fh)
            xs = j * stride[1] + dilate[1] * np.arange(fw)
            patch = xp[np.ix_(ys, xs)]  # fh x fw x c x n
            for g in range(groups):
                pg = patch[:, :, g * cin:(g + 1) * cin, :]
                fg = f[:, :, :, g * per:(g + 1) * per]
                y[i, j, g * per:(g + 1) * per, :] = np.einsum("uvcn,uvck->kn", pg, fg)
    if b is not None and np.size(b):
        y += np.reshape(b, (1, 1, -1, 1))
    return y


def pool(x, size, method, pad=(0, 0, 0, 0), stride=(1, 1)):
    # Windows clipped to the image: max ignores the padding, the average divides
    # by the number of real pixels (pooling_cpu.cpp).
    h, wd, c, n = x.shape
    t, bo, l, r = pad
    oh = (h + t + bo - size[0]) // stride[0] + 1
    ow = (wd + l + r - size[1]) // stride[1] + 1
    y = np.zeros((oh, ow, c, n))
    for i in range(oh):
        for j in range(ow):
            y1, x1 = i * stride[0] - t, j * stride[1] - l
            y2, x2 = min(y1 + size[0], h), min(x1 + size[1], wd)
            y1, x1 = max(y1, 0), max(x1, 0)
            win = x[y1:y2, x1:x2]
            y[i, j] = win.max(axis=(0, 1)) if method == "max" else win.mean(axis=(0, 1))
    return y


def relu(x, leak=0.0):
    return np.where(x > 0, x, leak * x)


def lrn(x, n, kappa, alpha, beta):
    c = x.shape[2]
    y = np.zeros_like(x)
    m1 = (n - 1) // 2
    m2 = n - 1 - m1
    for k in range(c):
        lo, hi = max(k - m1, 0), min(k + m2, c - 1)
        s = (x[:, :, lo:hi + 1] ** 2).sum(axis=2)
        y[:, :, k] = x[:, :, k] / (kappa + alpha * s) ** beta
    return y


def bnorm(x, g, b, moments):
    mu, sigma = moments[:, 0], moments[:, 1]
    return (x - mu.reshape(1, 1, -1, 1)) / sigma.reshape(1, 1, -1, 1) * g.reshape(1, 1, -1, 1) \
        + b.reshape(1, 1, -1, 1)


def softmax(x):
    e = np.exp(x - x.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def cell(items):
    a = np.empty((1, len(items)), dtype=object)
    for i, v in enumerate(items):
        a[0, i] = v
    return a


def save(path, data, compress):
    sio.savemat(path, data, do_compression=compress, format="5")


# ---- SimpleNN: a chain ----

def simplenn(out):
    h, wd, c, n = 10, 9, 3, 2
    f1, b1 = w(3, 3, 3, 6), w(1, 6)
    mult, bias = w(6) + 1, w(6)
    moments = np.stack([w(6), np.abs(w(6)) + 0.5], axis=1).astype(np.float32)
    f2 = w(3, 3, 3, 4)
    layers = [
        dict(type="conv", name="conv1", weights=cell([f1, b1]), pad=np.array([1., 1, 0, 2]),
             stride=np.array([1., 2]), dilate=1.0),
        dict(type="bnorm", name="bn1", weights=cell([mult.reshape(-1, 1), bias.reshape(-1, 1),
                                                    moments]), epsilon=1e-4),
        dict(type="relu", name="relu1", leak=0.1),
        dict(type="pool", name="pool1", method="max", pool=np.array([3., 3]), stride=2.0,
             pad=np.array([0., 1, 0, 1])),
        dict(type="lrn", name="norm1", param=np.array([5, 1, 2e-2, 0.75])),
        dict(type="conv", name="conv2", weights=cell([f2, np.zeros((0, 0), np.float32)]),
             pad=1.0, stride=1.0, dilate=np.array([2., 1])),
        dict(type="relu", name="relu2", leak=0.0),
        dict(type="pool", name="pool2", method="avg", pool=np.array([2., 3]), stride=1.0,
             pad=np.array([1., 0, 0, 1])),
    ]
    x = rng.standard_normal((h, wd, c, n)) * 50 + 100
    avg = np.array([[[101.0, 98.5, 103.25]]], dtype=np.float32)
    y = conv(x - avg.reshape(1, 1, 3, 1), f1, b1, (1, 1, 0, 2), (1, 2))
    y = bnorm(y, mult, bias, moments)
    y = relu(y, 0.1)
    y = pool(y, (3, 3), "max", (0, 1, 0, 1), (2, 2))
    y = lrn(y, 5, 1, 2e-2, 0.75)
    y = relu(conv(y, f2, None, (1, 1, 1, 1), (1, 1), (2, 1)))
    y = pool(y, (2, 3), "avg", (1, 0, 0, 1), (1, 1))
    fh, fw, fc = y.shape[:3]
    f3, b3 = w(fh, fw, fc, 5, scale=0.2), w(1, 5)
    layers += [
        dict(type="conv", name="fc", weights=cell([f3, b3]), pad=0.0, stride=1.0),
        dict(type="dropout", name="drop", rate=0.5),
        dict(type="softmax", name="prob"),
    ]
    y = softmax(conv(y, f3, b3))
    meta = dict(
        normalization=dict(imageSize=np.array([h, wd, c], dtype=float), averageImage=avg,
                           border=np.array([4., 4]), keepAspect=1.0, interpolation="bilinear"),
        classes=dict(name=cell([f"n0{k}" for k in range(5)]),
                     description=cell(["tabby cat", "red fox", "daisy", "teapot", "kite"])),
    )
    save(os.path.join(out, "simplenn.mat"), dict(layers=cell(layers), meta=meta), True)
    # MatConvNet feeds 0..255 pixels minus the average image; convnet's run takes the
    # array as given, so the test subtracts it too: store the raw input.
    np.save(os.path.join(out, "simplenn.in.npy"), x.transpose(3, 2, 0, 1).astype(np.float32))
    np.save(os.path.join(out, "simplenn.out.npy"), y.transpose(3, 2, 0, 1).astype(np.float32))


# ---- DagNN: a graph with a shared filter, concat, sum, batch norm, loss ----

def dagnn(out):
    h, wd, c, n = 8, 8, 3, 2
    layer_dt = [("name", "O"), ("type", "O"), ("inputs", "O"), ("outputs", "O"),
                ("params", "O"), ("block", "O")]
    layers, params = [], {}

    def add(name, ty, ins, outs, ps, block):
        layers.append((name, ty, cell(ins), cell(outs), cell(ps), block))

    params["conv1_f"], params["conv1_b"] = w(3, 3, 3, 4), w(4)
    add("conv1", "dagnn.Conv", ["data"], ["x1"], ["conv1_f", "conv1_b"],
        dict(size=np.array([3., 3, 3, 4]), hasBias=1.0, pad=np.array([1., 1, 1, 1]),
             stride=np.array([1., 1]), dilate=np.array([1., 1])))
    params["bn1_m"], params["bn1_b"] = w(4) + 1, w(4)
    params["bn1_x"] = np.stack([w(4), np.abs(w(4)) + 0.5], axis=1).astype(np.float32)
    add("bn1", "dagnn.BatchNorm", ["x1"], ["x2"], ["bn1_m", "bn1_b", "bn1_x"],
        dict(numChannels=4.0, epsilon=1e-5))
    add("relu1", "dagnn.ReLU", ["x2"], ["x3"], [], dict(leak=0.0))
    params["shared_f"] = w(3, 3, 4, 4)
    add("conv2a", "dagnn.Conv", ["x3"], ["x4a"], ["shared_f"],
        dict(size=np.array([3., 3, 4, 4]), hasBias=0.0, pad=1.0, stride=1.0))
    add("relu2", "dagnn.ReLU", ["x4a"], ["x5"], [], dict(leak=0.0))
    add("conv2b", "dagnn.Conv", ["x5"], ["x4b"], ["shared_f"],
        dict(size=np.array([3., 3, 4, 4]), hasBias=0.0, pad=1.0, stride=1.0))
    add("cat", "dagnn.Concat", ["x4a", "x4b"], ["x6"], [], dict(dim=3.0))
    params["conv3_f"], params["conv3_b"] = w(1, 1, 8, 4), w(4)
    add("conv3", "dagnn.Conv", ["x6"], ["x7"], ["conv3_f", "conv3_b"],
        dict(size=np.array([1., 1, 8, 4]), hasBias=1.0, pad=0.0, stride=1.0))
    add("sum", "dagnn.Sum", ["x7", "x3"], ["x8"], [], dict())
    add("norm", "dagnn.LRN", ["x8"], ["x9"], [], dict(param=np.array([3, 2, 1e-1, 0.5])))
    add("pool", "dagnn.Pooling", ["x9"], ["x10"], [],
        dict(method="avg", poolSize=np.array([3., 3]), pad=np.array([0., 1, 1, 0]),
             stride=np.array([2., 2])))
    add("drop", "dagnn.DropOut", ["x10"], ["x11"], [], dict(rate=0.3))

    x = rng.standard_normal((h, wd, c, n)) * 40 + 120
    mean_image = (rng.standard_normal((h, wd, c)) * 5 + 120).astype(np.float32)
    y1 = conv(x - mean_image[..., None], params["conv1_f"], params["conv1_b"], (1, 1, 1, 1))
    y3 = relu(bnorm(y1, params["bn1_m"], params["bn1_b"], params["bn1_x"]))
    y4a = conv(y3, params["shared_f"], None, (1, 1, 1, 1))
    y4b = conv(relu(y4a), params["shared_f"], None, (1, 1, 1, 1))
    y6 = np.concatenate([y4a, y4b], axis=2)
    y8 = conv(y6, params["conv3_f"], params["conv3_b"]) + y3
    y10 = pool(lrn(y8, 3, 2, 1e-1, 0.5), (3, 3), "avg", (0, 1, 1, 0), (2, 2))
    fh, fw = y10.shape[:2]
    params["fc_f"], params["fc_b"] = w(fh, fw, 4, 3, scale=0.2), w(3)
    add("fc", "dagnn.Conv", ["x11"], ["scores"], ["fc_f", "fc_b"],
        dict(size=np.array([fh, fw, 4., 3]), hasBias=1.0, pad=0.0, stride=1.0))
    add("prob", "dagnn.SoftMax", ["scores"], ["probs"], [], dict())
    add("loss", "dagnn.Loss", ["scores", "label"], ["objective"], [], dict(loss="softmaxlog"))
    y = softmax(conv(y10, params["fc_f"], params["fc_b"]))

    L = np.zeros((1, len(layers)), dtype=layer_dt)
    for i, l in enumerate(layers):
        L[0, i] = l
    P = np.zeros((1, len(params)), dtype=[("name", "O"), ("value", "O"),
                                          ("learningRate", "O"), ("weightDecay", "O")])
    for i, (k, v) in enumerate(params.items()):
        P[0, i] = (k, v.astype(np.float32), 1.0, 1.0)
    names = sorted({v for l in layers for v in list(l[2][0]) + list(l[3][0])})
    V = np.zeros((1, len(names)), dtype=[("name", "O"), ("precious", "O")])
    for i, v in enumerate(names):
        V[0, i] = (v, 0.0)
    meta = dict(normalization=dict(imageSize=np.array([h, wd, c], dtype=float),
                                   averageImage=mean_image, keepAspect=1.0, cropSize=0.875),
                classes=dict(name=cell(["a", "b", "c"]), description=cell(["A", "B", "C"])))
    save(os.path.join(out, "dagnn.mat"), dict(vars=V, params=P, layers=L, meta=meta), False)
    np.save(os.path.join(out, "dagnn.in.npy"), x.transpose(3, 2, 0, 1).astype(np.float32))
    np.save(os.path.join(out, "dagnn.out.npy"), y.transpose(3, 2, 0, 1).astype(np.float32))
    np.save(os.path.join(out, "dagnn.mean.npy"), mean_image.transpose(2, 0, 1)[None])


def bad(out):
    save(os.path.join(out, "not_a_network.mat"), dict(x=np.eye(3), note="hello"), True)
    layers = [dict(type="conv", name="conv1", weights=cell([w(3, 3, 3, 4), w(1, 5)]),
                   pad=0.0, stride=1.0)]
    meta = dict(normalization=dict(imageSize=np.array([6., 6, 3])))
    save(os.path.join(out, "wrong_biases.mat"), dict(layers=cell(layers), meta=meta), True)
    layers = [dict(type="conv", name="conv1", weights=cell([w(3, 3, 3, 4), w(1, 4)])),
              dict(type="custom", name="mystery")]
    save(os.path.join(out, "unknown_layer.mat"), dict(layers=cell(layers), meta=meta), True)


if __name__ == "__main__":
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    simplenn(d)
    dagnn(d)
    bad(d)
