#!/usr/bin/env bash
# The GPU check of the `cuda` feature, in two steps:
#   BENCH_SCRIPTS=DIR bash scripts/gpu-check.sh build
#       here (any machine with Rust; no CUDA needed): builds with --features cuda and packs
#       the stripped `convnet`, the GPU test binary and the PyTorch baselines torch_nets.py
#       and torch_lenet_mnist.py (taken from DIR) into target/gpu-pack.
#   bash scripts/gpu-check.sh
#       on the GPU machine, from the repository root with target/gpu-pack beside it (no
#       Rust there): the GPU tests (each of convnet's kernels against the CPU block it
#       mirrors; none may skip), the device errors, then convnet's and PyTorch's
#       benchmarks on the GPU alternating (ours, theirs, ours, theirs). Under 8 minutes;
#       the log and the RESULT lines go to $OUT (default /tmp/gpu-check).
# CUDA's libraries (cuDNN, cuBLAS, NVRTC, NCCL) are the NVIDIA pip packages of the Python
# environment that holds PyTorch; the driver's libcuda comes from the system.
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=target/gpu-pack

if [ "${1:-}" = build ]; then
  set -e
  : "${BENCH_SCRIPTS:?set BENCH_SCRIPTS to the folder holding torch_nets.py and torch_lenet_mnist.py}"
  cargo build --release -p convnet-cli --features cuda
  exe=$(cargo test --release -p convnet --features cuda --test cuda_kernels --no-run 2>&1 |
    sed -n 's/.*(\(target\/release\/deps\/cuda_kernels-[0-9a-f]*\)).*/\1/p' | tail -1)
  [ -n "$exe" ] || { echo "gpu-check: no cuda_kernels test binary" >&2; exit 1; }
  rm -rf "$PACK" && mkdir -p "$PACK"
  strip -o "$PACK/convnet" target/release/convnet
  strip -o "$PACK/cuda_kernels" "$exe"
  cp "$BENCH_SCRIPTS/torch_nets.py" "$BENCH_SCRIPTS/torch_lenet_mnist.py" "$PACK/"
  du -sh "$PACK"
  echo "packed $PACK: carry it to the GPU machine and run bash scripts/gpu-check.sh there"
  exit 0
fi

OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
[ -x "$PACK/convnet" ] || { echo "gpu-check: $PACK/convnet missing; run 'bash scripts/gpu-check.sh build' first"; exit 1; }

libs=$(python3 -c '
import glob, os, site
print(":".join(d for sp in site.getsitepackages() for d in sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))))')
[ -d /usr/local/nvidia/lib64 ] && libs="$libs:/usr/local/nvidia/lib64"
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
failed=0
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
results="$OUT/results.txt"
: >"$results"

echo "== machine"
nvidia-smi -L || fail "nvidia-smi"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'

echo "== GPU tests (kernels against the CPU blocks, strict FP32, 1e-4 relative)"
timeout 180 "$PACK/cuda_kernels" --nocapture --test-threads=1 >"$OUT/gpu-tests.txt" 2>&1
rc=$?
cat "$OUT/gpu-tests.txt"
[ $rc -eq 0 ] || fail "GPU tests (exit $rc)"
if grep -qE "skipped: (no GPU|NVRTC)" "$OUT/gpu-tests.txt"; then fail "GPU tests skipped on a GPU machine"; fi

echo "== device errors"
err=$(timeout 60 "$PACK/convnet" train --device cuda:4096 2>&1)
rc=$?
echo "$err"
{ [ $rc -eq 1 ] && grep -q "cuda:4096: no such GPU" <<<"$err"; } || fail "bad device index (exit $rc)"
timeout 60 "$PACK/convnet" train --device cuda --epochs 1 --out "$OUT/train-cuda" 2>&1 ||
  echo "(training on the GPU is not available yet; the line above says why)"

# One benchmark run, its RESULT lines kept; a failure is recorded and the check goes on.
bench() {
  local name=$1 limit=$2
  shift 2
  echo "-- $name: $*"
  local log
  log=$(timeout "$limit" "$@" 2>&1)
  local rc=$?
  echo "$log" | tail -n 20
  if [ $rc -eq 0 ]; then
    grep RESULT <<<"$log" | sed "s/^/$name /" >>"$results"
  else
    echo "$name exit $rc" >>"$results"
  fi
}

echo "== networks, alternating ours and PyTorch (training batch 32)"
have_bench_net=0
"$PACK/convnet" bench net --help 2>/dev/null | grep -q -- --device && have_bench_net=1
for net in resnet18 vgg16; do
  for round in 1 2; do
    if [ $have_bench_net -eq 1 ]; then
      bench "convnet-$net-$round" 90 "$PACK/convnet" bench net --net "$net" --batch 32 --reps 5 --device cuda
    else
      echo "convnet-$net-$round: no 'bench net --device' in this build" | tee -a "$results"
    fi
    bench "torch-$net-$round" 120 python3 "$PACK/torch_nets.py" --net "$net" --batch 32 --reps 5 --device cuda
  done
done

echo "== LeNet training on the digits, alternating (3 epochs, batch 100)"
for round in 1 2; do
  bench "convnet-lenet-$round" 90 "$PACK/convnet" bench lenet --epochs 3 --device cuda
  bench "torch-lenet-$round" 90 python3 "$PACK/torch_lenet_mnist.py" data --epochs 3 --device cuda
done

echo "== results"
cat "$results"
echo "gpu-check: $failed failure(s)"
[ $failed -eq 0 ]
