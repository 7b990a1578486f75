#!/usr/bin/env bash
# Alternates convnet's benchmarks with PyTorch's baselines (ours, theirs, ours,
# theirs, ...) on the same machine and prints each run's RESULT line, then the
# median of each figure and the ratio ours/theirs. Shared machines are noisy: the
# alternation and the medians are what make a ratio meaningful.
#
#   bash scripts/bench-vs-torch.sh net vgg16 [ROUNDS] [-- extra bench-net args]
#   bash scripts/bench-vs-torch.sh net resnet18
#   bash scripts/bench-vs-torch.sh net alexnet
#   bash scripts/bench-vs-torch.sh conv [ROUNDS]
#   bash scripts/bench-vs-torch.sh lenet [ROUNDS]
#
# Environment: PY (default $HOME/bench-venv/bin/python, with torch), BENCH (the
# baseline scripts, default ../shared/bench), THREADS (2), BATCH (8, nets only), REPS
# (timed repetitions per figure of each net run, both sides; 3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/bench-venv/bin/python}
BENCH=${BENCH:-../shared/bench}
[ -d "$BENCH" ] || BENCH=/work/shared/bench
THREADS=${THREADS:-2}
BATCH=${BATCH:-8}
REPS=${REPS:-3}
what=${1:?net NAME, conv or lenet}
shift
if [ "$what" = net ]; then
  net=${1:?network name}
  shift
fi
rounds=${1:-3}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
cargo build --release -q
bin=target/release/convnet
log=$(mktemp)
trap 'rm -f "$log"' EXIT

ours() {
  case $what in
    net) nice -n 5 "$bin" bench net --net "$net" --batch "$BATCH" --threads "$THREADS" --reps "$REPS" "$@" ;;
    conv) nice -n 5 "$bin" bench conv --threads "$THREADS" "$@" ;;
    lenet) nice -n 5 "$bin" bench lenet --epochs 3 --threads "$THREADS" "$@" ;;
  esac | grep RESULT | sed 's/^RESULT/OURS/'
}
theirs() {
  case $what in
    net) nice -n 5 "$PY" "$BENCH/torch_nets.py" --net "$net" --batch "$BATCH" --threads "$THREADS" --reps "$REPS" ;;
    conv) nice -n 5 "$PY" "$BENCH/torch_conv_layers.py" --threads "$THREADS" ;;
    lenet) nice -n 5 "$PY" "$BENCH/torch_lenet_mnist.py" data --epochs 3 --threads "$THREADS" ;;
  esac | grep RESULT | sed 's/^RESULT/TORCH/'
}

for r in $(seq "$rounds"); do
  ours "$@" | tee -a "$log"
  theirs | tee -a "$log"
done

# Per (case, figure): each side's median, and the median over rounds of the ratio
# of the runs taken next to each other (for times and memory theirs/ours, so that
# above 1 always means ours is better): the pairing cancels the load that moves
# between rounds, which the ratio of the two medians would not.
python3 - "$log" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    side, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields if "=" in f)
    case = kv.get("case", kv.get("net", "lenet"))
    for k, v in kv.items():
        try:
            x = float(v)
        except ValueError:
            continue
        rows.setdefault((case, k), {}).setdefault(side, []).append(x)
lower_better = ("_ms", "peak_rss_mb", "test_error")
print(f"{'case':24} {'figure':18} {'ours':>10} {'torch':>10} {'ratio':>7}  per round")
for (case, k), sides in rows.items():
    if k in ("threads", "batch") or "OURS" not in sides or "TORCH" not in sides:
        continue
    ours, theirs = sides["OURS"], sides["TORCH"]
    def better(o, t):
        if k.endswith(lower_better):
            return t / o if o else float("nan")
        return o / t if t else float("nan")
    per_round = [better(o, t) for o, t in zip(ours, theirs)]
    o, t = statistics.median(ours), statistics.median(theirs)
    rounds = " ".join(f"{r:.2f}" for r in per_round)
    print(f"{case:24} {k:18} {o:10.2f} {t:10.2f} {statistics.median(per_round):6.2f}x  {rounds}")
print("(ratio: median over rounds of ours vs the baseline run next to it; above 1: ours better)")
PY
