# Sourced by the step scripts (after their wheel install line): settings, a deadline, guarded
# tasks and packing of the results under $OUT/<step>/ (at most 8 files: table.md, results.json,
# logs.tar.gz, images.tar and up to 4 PNGs; the run tool returns no more than 8).
#
#   source experiments/gpu_session/common.sh STEP_NAME DEFAULT_BUDGET_S
#
# Environment: SMOKE=1 (tiny CPU run, no wheels), BUDGET_S (wall-clock budget of the whole
# script, from its start; default per step), OUT (the run tool sets it; SMOKE makes a temp dir).

STEP=$1
: "${BUDGET_S:=$2}"
GS=experiments/gpu_session
ROOT=$PWD
START_TS=$(date +%s)
DEADLINE=$((START_TS + BUDGET_S))
RESERVE_S=${RESERVE_S:-15}    # Kept free at the end for the summary and packing.
SMOKE=${SMOKE:-0}
export PYTHONUNBUFFERED=1
case ":${PYTHONPATH:-}:" in *":$PWD:"*) ;; *) export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} ;; esac

if [ "$SMOKE" = 1 ]; then
  export JAX_PLATFORMS=cpu
  : "${OUT:=$(mktemp -d /tmp/gpu_session_out.XXXXXX)}"
  : "${WORK:=$(mktemp -d /tmp/gpu_session_work.XXXXXX)}"
else
  : "${OUT:?OUT is not set (the run tool sets it; set it yourself elsewhere)}"
  # Ignored by git (/workdir*/): kept between calls while the machine stays warm, so a later
  # step can reuse a checkpoint and the compilation cache. Never carried back.
  : "${WORK:=$ROOT/workdir_gpu_session}"
fi
mkdir -p "$OUT/$STEP" "$WORK"
RAW=$WORK/$STEP/raw         # Everything of this step; packed into $OUT/$STEP after each task.
LOGS=$RAW/logs
mkdir -p "$RAW" "$LOGS" "$RAW/images"
HELDOUT=$WORK/heldout
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$WORK/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-1}

left() { echo $((DEADLINE - $(date +%s))); }

# task NAME CAP_S MIN_S -- COMMAND...
# Runs COMMAND with a limit of min(CAP_S, time left - RESERVE_S) seconds (SIGTERM, then SIGKILL
# 20 s later: the trainer saves a checkpoint on SIGTERM), output in $LOGS/NAME.log; skipped when
# less than MIN_S would be left. Records {task, rc, seconds, limit_s, timed_out} in tasks.jsonl.
task() {
  local name=$1 cap=$2 min=$3
  shift 3
  [ "${1:-}" = -- ] && shift
  local avail=$(( $(left) - RESERVE_S ))
  local limit=$(( cap < avail ? cap : avail ))
  if (( limit < min )); then
    echo "[$STEP] SKIP $name: ${avail}s left, needs ${min}s" | tee -a "$LOGS/$name.log"
    echo "{\"task\": \"$name\", \"skipped\": true, \"left_s\": $avail}" >> "$RAW/tasks.jsonl"
    return 0
  fi
  echo "[$STEP] $(date +%T) START $name (limit ${limit}s, $(left)s left): $*"
  local t0 rc t1
  t0=$(date +%s.%N)
  timeout -k 20 -s TERM "$limit" "$@" >> "$LOGS/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(python3 -c "print(round($t1 - $t0, 1))")
  local timed=false
  { [ $rc = 124 ] || [ $rc = 137 ]; } && timed=true
  echo "{\"task\": \"$name\", \"rc\": $rc, \"seconds\": $secs, \"limit_s\": $limit, \"timed_out\": $timed}" >> "$RAW/tasks.jsonl"
  echo "[$STEP] $(date +%T) END $name rc=$rc ${secs}s timed_out=$timed"
  grep -v -e '^WARNING: All log messages' -e 'absl::InitializeLog' "$LOGS/$name.log" | tail -n "${TAIL_LINES:-12}" | cut -c1-300 | sed "s/^/    [$name] /"
  pack
  return 0
}

# Copies PNGs named in $RAW/images into the pack, summarises and packs. Cheap (no JAX import).
pack() {
  python3 "$GS/summarize.py" "$STEP" "$RAW" "$OUT/$STEP" > /dev/null 2>> "$LOGS/summarize.log" \
    || echo "[$STEP] summarize failed (see logs.tar.gz: logs/summarize.log)"
}

finish() {
  pack
  echo
  echo "================ $STEP: $(( $(date +%s) - START_TS ))s of ${BUDGET_S}s budget ================"
  cat "$OUT/$STEP/table.md" 2>/dev/null
  echo
  ls -la "$OUT/$STEP"
}

write_heldout() {
  [ -f "$WORK/heldout_list.json" ] || python3 "$GS/heldout.py" "$HELDOUT" >> "$LOGS/heldout.log" 2>&1 \
    || { echo "held-out folder failed"; cat "$LOGS/heldout.log"; }
}

python3 - <<'EOF' > "$RAW/env.json" 2>> "$LOGS/env.log" || true
import json, os, platform, subprocess, sys
info = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
for mod in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "cv2", "skimage",
            "grain", "clu", "ml_collections", "tensorboardX", "av"):
  try:
    m = __import__(mod, fromlist=["_"])
    info[mod] = getattr(m, "__version__", "?")
  except Exception as e:
    info[mod] = f"MISSING: {type(e).__name__}: {e}"
try:
  info["nvidia_smi"] = subprocess.run(
      ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
       "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except Exception as e:
  info["nvidia_smi"] = f"n/a ({type(e).__name__})"
try:
  import jax
  info["devices"] = [str(d) for d in jax.devices()]
  info["device_kind"] = jax.devices()[0].device_kind
except Exception as e:
  info["devices"] = f"FAILED: {e}"
print(json.dumps(info, indent=1))
EOF
echo "[$STEP] budget ${BUDGET_S}s, SMOKE=$SMOKE, OUT=$OUT/$STEP, WORK=$WORK"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('[env]', ', '.join(f'{k}={v}' for k,v in d.items()))" "$RAW/env.json" 2>/dev/null | cut -c1-600
