#!/usr/bin/env bash
# Side-by-side perf figures for leveret and the reference RabbitMQ (see bench/compare.py).
#   bench/compare.sh [LEVERET_URL] [RABBITMQ_URL] [extra compare.py options...]
set -euo pipefail
cd "$(dirname "$0")/.."
leveret=${1:-amqp://guest:guest@127.0.0.1:5672/}
rabbitmq=${2:-amqp://guest:guest@127.0.0.1:5673/}
shift $(( $# < 2 ? $# : 2 ))
py=.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" bench/compare.py --leveret "$leveret" --rabbitmq "$rabbitmq" "$@"
