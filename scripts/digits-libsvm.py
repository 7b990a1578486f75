#!/usr/bin/env python3
"""Writes the embedded digits (data/*-ubyte.gz) in libsvm form: pixels scaled to [0, 1],
784 features, zeros left out, labels 0-9. Usage: digits-libsvm.py OUT_DIR [N_TRAIN]."""
import gzip, os, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")

def read(split, n_max):
    img = gzip.open(os.path.join(root, f"{split}-images-idx3-ubyte.gz")).read()
    lab = gzip.open(os.path.join(root, f"{split}-labels-idx1-ubyte.gz")).read()
    n, rows, cols = struct.unpack(">III", img[4:16])
    d = rows * cols
    lines = []
    for i in range(min(n, n_max)):
        px = img[16 + i * d: 16 + (i + 1) * d]
        feats = " ".join(f"{j + 1}:{repr(v / 255)}" for j, v in enumerate(px) if v)
        lines.append(f"{lab[8 + i]} {feats}\n")
    return "".join(lines)

out = sys.argv[1]
n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
os.makedirs(out, exist_ok=True)
for split, n in (("train", n_train), ("test", 2000)):
    with open(os.path.join(out, f"digits.{split}"), "w") as f:
        f.write(read(split, n))
