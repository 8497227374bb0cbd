#!/usr/bin/env bash
# Flover's Kubernetes topology as local processes, for trying it without a cluster: one coordinator and N workers
# on this machine, started by the launcher with the flags of k8s/base and the settings of k8s/base/flover.env (the
# source of the ConfigMap flover-config: the same keys, read the same way).
#
#   deploy/local-cluster.sh up [--workers N] [--tp N] [--model DIR] [--kv-memory SIZE] [--threads N]
#                              [--dir DIR] [--timeout SECONDS]
#   deploy/local-cluster.sh status [--dir DIR]
#   deploy/local-cluster.sh down [--dir DIR]
#
# up starts the processes in the background and returns once the coordinator serves N/TP groups (or one process
# dies, or --timeout passes). --tp, --model, --kv-memory override FLOVER_TP, FLOVER_MODEL, FLOVER_KV_MEMORY;
# --workers defaults to the group size, --threads to this machine's cores shared among the workers. Logs go to
# DIR/logs, process ids to DIR/pids (DIR: target/local-cluster in the repository). down stops the processes that
# up recorded.
#
# Ports: in Kubernetes every pod has an address of its own; here all processes share 127.0.0.1, so workers take
# consecutive ports from the pods' ones. The coordinator: client gRPC 50051, metrics 9090, cluster 5701 (as in
# the pods). Worker i (from 0): worker service 50052+2i, collectives 50053+2i, metrics 9091+i, cluster 5702+i.
# Discovery: the workers contact the coordinator's cluster port (--cluster) instead of a headless Service.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLOVER="$ROOT/flover"
CONFIG="$ROOT/k8s/base/flover.env"
HOST=127.0.0.1
COORDINATOR_PORT=50051
METRICS_PORT=9090
CLUSTER_PORT=5701
WORKER_PORT=50052
WORKER_METRICS_PORT=9091

die() {
  echo "local-cluster: $*" >&2
  exit 2
}

usage() {
  sed -n '6,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
ACTION="$1"
shift

# The deployment's settings: FLOVER_MODEL, FLOVER_TP, FLOVER_POLICY, ... as in the ConfigMap.
# shellcheck source=../k8s/base/flover.env
. "$CONFIG"

DIR="$ROOT/target/local-cluster"
WORKERS=""
THREADS=""
TIMEOUT=300
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS="${2:?--workers needs a number}"; shift 2 ;;
    --tp) FLOVER_TP="${2:?--tp needs a number}"; shift 2 ;;
    --model) FLOVER_MODEL="${2:?--model needs a directory}"; shift 2 ;;
    --kv-memory) FLOVER_KV_MEMORY="${2:?--kv-memory needs a size}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a number}"; shift 2 ;;
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
    -h|--help) usage ;;
    *) die "unknown option $1" ;;
  esac
done
LOGS="$DIR/logs"
PIDS="$DIR/pids"

# A recorded process that still runs and is one of ours (the pid may have been reused since).
alive() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" 2>/dev/null | grep -q "flover"
}

recorded() { # prints "name pid" for each recorded process
  local f
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    echo "$(basename "$f" .pid) $(cat "$f")"
  done
}

# flover_num_groups from the coordinator's metrics, or nothing.
groups_serving() {
  curl -fsS --max-time 2 "http://$HOST:$METRICS_PORT/metrics" 2>/dev/null \
    | awk '$1 == "flover_num_groups" { printf "%d\n", $2 }' || true
}

start() { # start NAME ARGS...: the launcher in the background, its log and pid recorded
  local name="$1"
  shift
  nohup "$FLOVER" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  echo "local-cluster: $name (pid $!): flover $*"
}

up() {
  [[ "$FLOVER_TP" =~ ^[1-9][0-9]*$ ]] || die "--tp must be a positive number, got $FLOVER_TP"
  WORKERS="${WORKERS:-$FLOVER_TP}"
  [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive number, got $WORKERS"
  [ -f "$FLOVER_MODEL/config.json" ] || die "no model at $FLOVER_MODEL (FLOVER_MODEL in $CONFIG): give --model DIR"
  if [ $((WORKERS % FLOVER_TP)) -ne 0 ]; then
    echo "local-cluster: $WORKERS workers in groups of $FLOVER_TP: $((WORKERS % FLOVER_TP)) will wait for more" >&2
  fi
  local cores
  cores=$(nproc 2>/dev/null || echo 1)
  THREADS="${THREADS:-$(( cores / WORKERS > 0 ? cores / WORKERS : 1 ))}"
  local name pid
  while read -r name pid; do
    if alive "$pid"; then
      die "$name is still running (pid $pid): run '$0 down' first"
    fi
  done < <(recorded)
  mkdir -p "$LOGS" "$PIDS"
  rm -f "$PIDS"/*.pid
  local model
  model="$(cd "$FLOVER_MODEL" && pwd)"

  # Build the jar once here, rather than in every process at once.
  "$FLOVER" --version >/dev/null

  start coordinator coordinator \
    --model="$model" \
    --tp="$FLOVER_TP" \
    --host="$HOST" \
    --port="$COORDINATOR_PORT" \
    --advertise-host="$HOST" \
    --metrics-port="$METRICS_PORT" \
    --cluster="$HOST:$CLUSTER_PORT" \
    --cluster-name="$FLOVER_CLUSTER_NAME" \
    --cluster-port="$CLUSTER_PORT" \
    --step-timeout="$FLOVER_STEP_TIMEOUT" \
    --load-timeout="$FLOVER_LOAD_TIMEOUT" \
    --policy="$FLOVER_POLICY" \
    --max-batch="$FLOVER_MAX_BATCH" \
    --max-step-tokens="$FLOVER_MAX_STEP_TOKENS" \
    --max-waiting="$FLOVER_MAX_WAITING" \
    --max-queue-delay="$FLOVER_MAX_QUEUE_DELAY"
  local i
  for ((i = 0; i < WORKERS; i++)); do
    start "worker-$i" worker \
      --host="$HOST" \
      --advertise-host="$HOST" \
      --port=$((WORKER_PORT + 2 * i)) \
      --collective-port=$((WORKER_PORT + 2 * i + 1)) \
      --metrics-port=$((WORKER_METRICS_PORT + i)) \
      --cluster="$HOST:$CLUSTER_PORT" \
      --cluster-name="$FLOVER_CLUSTER_NAME" \
      --cluster-port=$((CLUSTER_PORT + 1 + i)) \
      --kv-memory="$FLOVER_KV_MEMORY" \
      --device="$FLOVER_DEVICE" \
      --threads="$THREADS"
  done

  local want=$((WORKERS / FLOVER_TP)) deadline=$((SECONDS + TIMEOUT)) n
  [ "$want" -ge 1 ] || { echo "local-cluster: fewer workers than a group; not waiting for one" >&2; return 0; }
  if ! command -v curl >/dev/null; then
    echo "local-cluster: started; no curl to watch the coordinator's metrics for its groups: see $LOGS" >&2
    return 0
  fi
  echo "local-cluster: waiting for $want group(s) of $FLOVER_TP to serve (logs in $LOGS)..." >&2
  while :; do
    n=$(groups_serving)
    if [ -n "$n" ] && [ "$n" -ge "$want" ]; then
      echo "local-cluster: up: $n group(s) serving; clients connect to $HOST:$COORDINATOR_PORT, metrics on" \
        "http://$HOST:$METRICS_PORT/metrics"
      return 0
    fi
    while read -r name pid; do
      if ! alive "$pid"; then
        echo "local-cluster: $name (pid $pid) exited; the end of $LOGS/$name.log:" >&2
        tail -n 20 "$LOGS/$name.log" >&2
        exit 1
      fi
    done < <(recorded)
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "local-cluster: no $want group(s) serving after $TIMEOUT s (processes left running; see $LOGS)" >&2
      exit 1
    fi
    sleep 1
  done
}

status() {
  local name pid any=false
  while read -r name pid; do
    any=true
    if alive "$pid"; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: not running (pid $pid; log $LOGS/$name.log)"
    fi
  done < <(recorded)
  [ "$any" = true ] || { echo "no local cluster recorded in $DIR"; return 0; }
  local n
  n=$(groups_serving)
  echo "coordinator at $HOST:$COORDINATOR_PORT: ${n:-?} group(s) serving"
}

down() {
  local name pid stopping=()
  while read -r name pid; do
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$pid")
      echo "local-cluster: stopping $name (pid $pid)"
    fi
  done < <(recorded)
  local deadline=$((SECONDS + 20)) left
  while :; do
    left=()
    for pid in ${stopping[@]+"${stopping[@]}"}; do
      if alive "$pid"; then
        left+=("$pid")
      fi
    done
    [ ${#left[@]} -gt 0 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "local-cluster: killing ${left[*]}, still running after 20 s" >&2
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rm -f "$PIDS"/*.pid
  echo "local-cluster: down"
}

case "$ACTION" in
  up) up ;;
  status) status ;;
  down) down ;;
  *) usage ;;
esac
