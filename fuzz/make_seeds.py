#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/ (fuzz/README.md).

    fuzz/make_seeds.py build/hetrain

Small valid inputs of each kind (and a few near misses), so that libFuzzer starts from files that
reach deep into each parser. The checkpoint and the images-layout dataset are written by hetrain
itself. Needs Debian's python3-torch, python3-h5py, python3-numpy and python3-pil.
"""
import gzip
import io
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def idx_images(count, rows, cols):
    pixels = bytes((7 * i) % 256 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + pixels


def idx_labels(count):
    return struct.pack(">II", 0x801, count) + bytes(i % 10 for i in range(count))


def idx_seeds():
    images, labels = idx_images(3, 4, 4), idx_labels(3)
    put("idx", "plain", bytes([0]) + struct.pack("<I", len(images)) + images + labels)
    gz_images, gz_labels = gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)
    put("idx", "gzip", bytes([3]) + struct.pack("<I", len(gz_images)) + gz_images + gz_labels)
    short = idx_labels(2)
    put("idx", "count-mismatch", bytes([0]) + struct.pack("<I", len(images)) + images + short)


def cifar_seeds():
    records = b"".join(bytes([i % 10]) + bytes((i + j) % 256 for j in range(3072))
                       for i in range(2))
    put("cifar", "two-records", bytes([0]) + records)
    put("cifar", "two-files", bytes([1]) + records)


def image_bytes(fmt, mode):
    from PIL import Image
    img = Image.new(mode, (5, 3))
    img.putdata([(x * 40, y * 80, 100) if mode == "RGB" else x * 40
                 for y in range(3) for x in range(5)])
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def folder_entry(folder, name, data):
    return bytes([folder, name]) + struct.pack("<H", len(data)) + data


def image_folder_seeds():
    png, jpg, bmp = (image_bytes(f, "RGB") for f in ("PNG", "JPEG", "BMP"))
    gray = image_bytes("PNG", "L")
    # options: 3 channels, 8x8; class a: png + bmp, class b: jpg, class c/deeper: gray png
    entries = (folder_entry(0, 0, png) + folder_entry(0, 3, bmp) + folder_entry(1, 1, jpg) +
               folder_entry(2, 4, gray))
    put("image_folder", "three-classes", bytes([0, 7, 7]) + entries)
    put("image_folder", "gray-val-skip", bytes([7, 3, 5]) + entries + folder_entry(1, 5, b"notes"))
    put("image_folder", "bad-png", bytes([2, 7, 7]) + folder_entry(0, 0, png[:40]) +
        folder_entry(1, 0, png))


def words(*values):
    return b"".join(struct.pack("<q", v) for v in values)


def header(kind):
    return (0x4854 << 32) | (kind << 16) | 3  # "HT", the type, protocol version 3


def f64(x):
    return struct.unpack("<q", struct.pack("<d", x))[0]


def message_seeds():
    put("messages", "round-command", bytes([0]) + words(header(1), 1, 0, 16, 32, 5, 1, 0, 0, 3))
    put("messages", "round-stats", bytes([1]) + words(header(2), f64(1.5), 30, 32, f64(0.2), 0,
                                                      16, 1, f64(50), f64(1e9), f64(60), f64(250),
                                                      f64(0.01)))
    put("messages", "shard-setup", bytes([2]) + words(header(3), 7, 2, 1, 2, 2, 3, 0, 0))
    put("messages", "shard-command", bytes([3]) + words(header(4), 1, 5, 64, f64(0.05), 0, 1, 0))
    put("messages", "shard-ack", bytes([4]) + words(header(5), f64(0.1), f64(0.2), f64(0.3), 4096))
    text = b"too slow: 3.1 samples/s".ljust(512, b"\0")
    put("messages", "verdict", bytes([5]) + words(header(6), 0) + text)
    report = struct.pack("<IIiqiqqiqdddddddi", 0x50525448, 2, 1, 4242, 2, 8 << 30, 0, 0,
                         8 << 30, 120.0, 45.0, 900.0, 3e7, 0.0, 0.0, 0.0, 0)
    for field, size in ((b"node-a", 64), (b"AMD EPYC", 128), (b"cpu", 96), (b"OpenBLAS", 160)):
        report += field.ljust(size, b"\0")
    put("messages", "report", bytes([6]) + report)
    spans = struct.pack("<12d", 0, 1000.0, 50.0, 0, 3, 1050.0, 20.0, 0, 5, 1100.0, 10.0, 1)
    put("messages", "spans", bytes([7]) + spans)


def config_seeds():
    put("config", "readme", b'# run.toml\ndata = "data/fashion-mnist-train.h5"\n'
        b'test-data = "data/fashion-mnist-test.h5"\nmodel = "cnn"\nglobal-batch = 512\n'
        b'rebalance-every = 20\n')
    put("config", "section", b'[train]\nsynthetic = "1x8x8:4:64"\nepochs = 2\nlr = 0.1\n'
        b'optimizer = "adamw"\naugment = "crop:2,flip"\nsync = "params"\nlocal-steps = 2\n'
        b'label-smoothing = 0.1\nwire-dtype = "bf16"\n')
    put("config", "ini", b'synthetic=1x4x4:2:32\naggregators=2\nsampling="weighted"\n'
        b'micro-batch=8\namp=off\n')


def model_seed(path):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x.flatten(1))

    torch.jit.script(Tiny()).save(path)


def dataset_seeds(hetrain, tmp):
    images, labels = os.path.join(tmp, "i.idx"), os.path.join(tmp, "l.idx")
    with open(images, "wb") as f:
        f.write(idx_images(4, 3, 3))
    with open(labels, "wb") as f:
        f.write(idx_labels(4))
    out = os.path.join(tmp, "images.h5")
    subprocess.run([hetrain, "data", "import-idx", "--images", images, "--labels", labels,
                    "--out", out], check=True, stdout=subprocess.DEVNULL)
    put("dataset", "images-layout", open(out, "rb").read())
    general = os.path.join(tmp, "general.h5")  # h5py's defaults, as a user writes one
    with h5py.File(general, "w") as f:
        f["inputs"] = np.arange(12, dtype=np.float32).reshape(4, 3)
        f["targets"] = np.arange(8, dtype=np.float32).reshape(4, 2)
        f.attrs["format"] = "hetrain-dataset"
        f.attrs["format_version"] = 1
    put("dataset", "general-float", open(general, "rb").read())
    labels_h5 = os.path.join(tmp, "labels.h5")
    with h5py.File(labels_h5, "w") as f:
        f["inputs"] = np.arange(32, dtype=np.uint8).reshape(4, 8)
        f["targets"] = np.array([0, 1, 2, 1], dtype=np.int64)
        f.attrs["class_names"] = ["a", "b", "c"]
    put("dataset", "general-labels", open(labels_h5, "rb").read())


def checkpoint_seed(hetrain, tmp):
    model = os.path.join(tmp, "tiny.pt")
    model_seed(model)
    put("model_file", "tiny-script", open(model, "rb").read())
    ckpt_dir = os.path.join(tmp, "checkpoints")
    subprocess.run([hetrain, "train", "--synthetic", "1x2x2:2:16", "--model", model, "--epochs",
                    "1", "--global-batch", "8", "--micro-batch", "4", "--checkpoint-dir", ckpt_dir],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".h5"))[-1]
    put("checkpoint", "tiny-script-model", open(os.path.join(ckpt_dir, ckpt), "rb").read())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    hetrain = os.path.abspath(sys.argv[1])
    idx_seeds()
    cifar_seeds()
    image_folder_seeds()
    message_seeds()
    config_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        dataset_seeds(hetrain, tmp)
        checkpoint_seed(hetrain, tmp)
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
