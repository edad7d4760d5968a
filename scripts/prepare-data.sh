#!/usr/bin/env bash
# Turns Debian's dataset-fashion-mnist IDX files into data/fashion-mnist-{train,test}.h5.
# Skips a file that already exists and reads back valid (`hetrain data info`).
set -euo pipefail
cd "$(dirname "$0")/.."
hetrain=${HETRAIN:-build/hetrain}
src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
names="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
mkdir -p data
for split in train:train test:t10k; do
  out="data/fashion-mnist-${split%%:*}.h5"
  prefix="${split##*:}"
  if [ -f "$out" ] && "$hetrain" data info "$out" >/dev/null 2>&1; then
    echo "prepare-data: $out is there"
    continue
  fi
  "$hetrain" data import-idx --images "$src/$prefix-images-idx3-ubyte.gz" \
    --labels "$src/$prefix-labels-idx1-ubyte.gz" --out "$out" --class-names "$names"
done
