#!/usr/bin/env bash
# Instructions per message on the hot path (bench/hotpath.py), counted by valgrind's
# callgrind: repeatable whatever else the machine is doing, unlike seconds. Two runs of
# different lengths cancel start-up and imports:
#   (instructions(N2) - instructions(N1)) / (N2 - N1)
#
#   bench/instructions.sh [TREE ...]     (default: this checkout; any leveret checkout works)
#   HOTPATH_ARGS=--durable bench/instructions.sh ...   the persistent path
#   HOTPATH=/path/to/hotpath.py ...      a given copy of the script (an older tree's may
#                                        lack an option)
set -euo pipefail
N1=${N1:-10000}
N2=${N2:-40000}
PY=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
count() {  # tree messages -> instructions
  (cd "$1" && PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/dev/null \
     "$PY" "${HOTPATH:-bench/hotpath.py}" ${HOTPATH_ARGS:-} --messages "$2" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
}
for tree in "${@:-$(cd "$(dirname "$0")/.." && pwd)}"; do
  a=$(count "$tree" "$N1")
  b=$(count "$tree" "$N2")
  echo "$tree: $(( (b - a) / (N2 - N1) )) instructions/message" \
       "(hotpath ${HOTPATH_ARGS:-}, $N1 vs $N2 messages)"
done
