#!/usr/bin/env bash
# Times `convnet linear train` against LIBLINEAR on the embedded digits in libsvm form
# (8,000 training, 2,000 test digits, pixels in [0, 1]), same flags, whole process:
# ours, liblinear-train 2.3.0 (Debian), and LIBLINEAR 2.50 (PyPI; its time is the
# train() call alone, since reading data in Python dominates its whole process).
# Usage: scripts/bench-linear.sh [solver numbers...]   (default: 0 1 2 3 4 5 6 7 11 12 13 21)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-refs.sh
cargo build --release -q
BIN=$PWD/target/release/convnet
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
python3 scripts/digits-libsvm.py "$DIR"
# Regression: the digit as a real target; one-class: digit 0 as +1, the rest -1.
awk '{ $1 = ($1 == 0) ? 1 : -1; print }' "$DIR/digits.train" > "$DIR/oc.train"
awk '{ $1 = ($1 == 0) ? 1 : -1; print }' "$DIR/digits.test" > "$DIR/oc.test"
SOLVERS=${*:-0 1 2 3 4 5 6 7 11 12 13 21}

secs() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
score() { # accuracy or MSE from a predict program's output
  grep -Eo '(Accuracy = [0-9.]+|Mean squared error = [0-9.e+-]+)' | head -1 | awk '{print $NF}'
}
py250() {
  python3 - "$@" <<'PY'
import sys, time
from liblinear.liblinearutil import train, predict, svm_read_problem
tr, te, opts = sys.argv[1:4]
y, x = svm_read_problem(tr); yt, xt = svm_read_problem(te)
t = time.time(); m = train(y, x, opts + " -q"); el = time.time() - t
_, acc, _ = predict(yt, xt, m, "-q")
regression = opts.split()[1] in ("11", "12", "13")
print("%.2f %.6g" % (el, acc[1] if regression else acc[0]))
PY
}

printf "%-4s | %9s %9s | %9s %9s | %9s %9s\n" "-s" "ours s" "score" "2.3.0 s" "score" "2.50 s" "score"
for s in $SOLVERS; do
  case $s in
    21) tr=$DIR/oc.train; te=$DIR/oc.test ;;
    *) tr=$DIR/digits.train; te=$DIR/digits.test ;;
  esac
  t_ours=$(secs "$BIN" linear train -q -s "$s" "$tr" "$DIR/ours.model")
  a_ours=$("$BIN" linear predict "$te" "$DIR/ours.model" "$DIR/ours.out" | score)
  if [ "$s" = 21 ]; then
    t_230="-"; a_230="-"  # one-class SVM needs LIBLINEAR >= 2.40
  else
    t_230=$(secs liblinear-train -q -s "$s" "$tr" "$DIR/ref.model")
    a_230=$(liblinear-predict "$te" "$DIR/ref.model" "$DIR/ref.out" | score)
  fi
  read -r t_250 a_250 < <(py250 "$tr" "$te" "-s $s")
  printf "%-4s | %9s %9s | %9s %9s | %9s %9s\n" "$s" "$t_ours" "$a_ours" "$t_230" "$a_230" "$t_250" "$a_250"
done
echo "(score: test accuracy in %, or mean squared error for -s 11-13; $(nproc) CPUs)"
