#!/usr/bin/env bash
# The GPU run (issue 17): one `run` call of at most 9 minutes on the H200 that answers every open
# GPU question, in priority order, each part under its own deadline:
#   1. DeepFill v2 speed, flowinpaint (JAX) and the PyTorch port side by side: inference 256x256
#      batch 16 and 512x512 batch 1, train step 256x256 batch 16; bf16 rows first, then fp32.
#   2. Whole-generator inference at 2048x2048 and 4096x4096 (time, device memory), both sides.
#   3. Video removal end to end: 250 synthetic frames at 854x480 through flowinpaint.remove.
#   4. DeepFill v2 training on the carried image pack for what is left (at least 3 minutes,
#      bf16, batch as large as fits), then `evaluate` on scikit-image's grayscale photos next to
#      Telea (and PatchMatch when evaluate has it); the generator comes back in $OUT.
# $OUT gets at most 8 files: table.md (printed last), results.json, logs.tar.gz,
# generator_deepfill_v2.tar.gz, eval_grid.png, video_strip.png. See README.md for the call.
#
#   bash experiments/gpu_session/run.sh            # on the GPU host (the run tool sets OUT)
#   SMOKE=1 bash experiments/gpu_session/run.sh    # the same code paths, tiny, on a CPU
#
# Knobs: BUDGET_S (540: the whole script, wheel install included), P1_S / P2_S / P3_S (caps of
# parts 1-3: 150 / 70 / 60 s), P4_MIN_S (230: kept for part 4 whatever parts 1-3 do),
# TRAIN_BATCH (default: chosen from part 1's memory figure, at most TRAIN_BATCH_MAX=128).
cd "$(dirname "$0")/../.." || exit 2
START_TS=$(date +%s)
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} || { echo "wheel install failed"; exit 3; }
fi

SMOKE=${SMOKE:-0}
KIT=experiments/gpu_session
ROOT=$PWD
export PYTHONUNBUFFERED=1
case ":${PYTHONPATH:-}:" in *":$PWD:"*) ;; *) export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} ;; esac
PORT_DIR=${PORT_DIR:-.peer/deepfillv2-pytorch}
PACK_DIR=${PACK_DIR:-.pack/images}

if [ "$SMOKE" = 1 ]; then
  export JAX_PLATFORMS=cpu
  : "${OUT:=$(mktemp -d /tmp/gpu_run_out.XXXXXX)}"
  : "${WORK:=$(mktemp -d /tmp/gpu_run_work.XXXXXX)}"
  : "${BUDGET_S:=3600}" "${P1_S:=1200}" "${P2_S:=600}" "${P3_S:=600}" "${P4_MIN_S:=60}"
  CNUM=8; WL=infer:32:2,train:32:2; WL_FP32=infer:32:2; ITERS=2; WARM=0
  HR_SIZES=64,128; HR_OPTS="--score-elements 10000"; PORT_HR=128,64; V_FRAMES=12; V_SIZE=160x96
  T_SIZE=64; T_STEPS=3; T_WORKERS=0; EVAL_NUM=4; TRAIN_MIN_S=20; EVAL_S=60; BG_SCALE=10
  PORT_OPTS="--cnum 8 --d-cnum 8"
else
  : "${OUT:?OUT is not set (the run tool sets it; set it yourself elsewhere)}"
  : "${WORK:=$ROOT/workdir_gpu_run}"   # Ignored by git (/workdir*/).
  : "${BUDGET_S:=540}" "${P1_S:=150}" "${P2_S:=70}" "${P3_S:=60}" "${P4_MIN_S:=230}"
  CNUM=48; WL=infer:256:16,train:256:16,infer:512:1; WL_FP32=$WL; ITERS=30; WARM=3
  HR_SIZES=2048,4096; HR_OPTS=""; PORT_HR=4096,2048; V_FRAMES=250; V_SIZE=854x480
  T_SIZE=256; T_STEPS=100000000; T_WORKERS=8; EVAL_NUM=20; TRAIN_MIN_S=180; EVAL_S=45; BG_SCALE=1
  PORT_OPTS=""
fi
DEADLINE=$((START_TS + BUDGET_S))
RESERVE_S=${RESERVE_S:-15}   # For the last summary.
RAW=$WORK/raw
LOGS=$RAW/logs
HELDOUT=$WORK/heldout
rm -rf "$RAW"   # A rerun on a warm machine starts its record afresh (the clip is kept).
mkdir -p "$OUT" "$LOGS"
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$WORK/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-2}

now() { date +%s; }
left() { echo $((DEADLINE - $(now))); }
# End of part 1, 2 or 3: its cap, but never into the time kept for part 4 and the summary.
part_end() { local a=$(( $(now) + $1 )) b=$((DEADLINE - RESERVE_S - P4_MIN_S)); echo $((a < b ? a : b)); }
# Background jobs (CPU work beside the GPU parts) run on the last 4 cores where there are 8+.
BG=(nice -n 10)
if command -v taskset >/dev/null && [ "$(nproc)" -ge 8 ]; then
  BG=(taskset -c "$(( $(nproc) - 4 ))-$(( $(nproc) - 1 ))" nice -n 10)
fi

# task NAME PART END MIN -- COMMAND...: runs COMMAND until END (SIGTERM, SIGKILL 20 s later; the
# trainer saves on SIGTERM), output in $LOGS/NAME.log; skipped if less than MIN s are left.
# Records {task, part, rc, seconds, limit_s, timed_out} in tasks.jsonl, then packs $OUT.
task() {
  local name=$1 part=$2 end=$3 min=$4
  shift 4
  [ "${1:-}" = -- ] && shift
  local limit=$((end - $(now)))
  if (( limit < min )); then
    echo "[run] $(date +%T) SKIP $name: ${limit}s left of part $part, needs ${min}s" | tee -a "$LOGS/$name.log"
    echo "{\"task\": \"$name\", \"part\": $part, \"skipped\": true, \"limit_s\": $limit}" >> "$RAW/tasks.jsonl"
    return 0
  fi
  echo "[run] $(date +%T) START $name (part $part, limit ${limit}s, $(left)s left): $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout -k 20 -s TERM "$limit" "$@" >> "$LOGS/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs timed=false
  secs=$(python3 -c "print(round($t1 - $t0, 1))")
  { [ $rc = 124 ] || [ $rc = 137 ]; } && timed=true
  echo "{\"task\": \"$name\", \"part\": $part, \"rc\": $rc, \"seconds\": $secs, \"limit_s\": $limit, \"timed_out\": $timed}" >> "$RAW/tasks.jsonl"
  echo "[run] $(date +%T) END $name rc=$rc ${secs}s timed_out=$timed"
  grep -v -e '^WARNING: All log messages' -e 'absl::InitializeLog' "$LOGS/$name.log" | tr '\r' '\n' \
    | grep -v -e '^\s*$' -e 'frames written \[' -e '^\*\*\*' -e 'slow_operation_alarm' -e 'Very slow compile' \
    | tail -n "${TAIL_LINES:-8}" | cut -c1-250 | sed "s/^/    [$name] /"
  LAST_RC=$rc
  pack
  return 0
}

# bg NAME LIMIT -- COMMAND...: COMMAND in the background (see BG), output in $LOGS/NAME.log.
declare -A BG_PIDS
bg() {
  local name=$1 limit=$2
  shift 2
  [ "${1:-}" = -- ] && shift
  echo "[run] $(date +%T) BACKGROUND $name (limit ${limit}s): $*"
  ( t0=$(date +%s); timeout -k 10 -s TERM "$limit" "${BG[@]}" "$@" >> "$LOGS/$name.log" 2>&1; rc=$?
    echo "{\"task\": \"$name\", \"part\": 0, \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit_s\": $limit, \"timed_out\": $([ $rc = 124 ] && echo true || echo false), \"note\": \"background\"}" >> "$RAW/tasks.jsonl" ) &
  BG_PIDS[$name]=$!
}
wait_bg() { local pid=${BG_PIDS[$1]:-}; [ -n "$pid" ] && wait "$pid" 2>/dev/null; return 0; }

pack() {
  python3 "$KIT/summarize.py" "$RAW" "$OUT" > /dev/null 2>> "$LOGS/summarize.log" \
    || echo "[run] summarize failed (logs/summarize.log in logs.tar.gz)"
}

# --- Record: what ran where -------------------------------------------------------------------
PACK_SOURCE=$(head -1 "$(dirname "$PACK_DIR")/SOURCE.txt" 2>/dev/null || echo "")
python3 - "$RAW/run.json" "$SMOKE" "$BUDGET_S" "$PACK_SOURCE" <<'EOF'
import datetime, json, sys
path, smoke, budget, source = sys.argv[1:5]
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": ("SMOKE=1 " if smoke == "1" else "") + "bash experiments/gpu_session/run.sh",
           "smoke": smoke == "1", "budget_s": int(budget), "pack_source": source},
          open(path, "w"), indent=1)
EOF
XLA_PYTHON_CLIENT_PREALLOCATE=false python3 - <<'EOF' > "$RAW/env.json" 2>> "$LOGS/env.log" &
import importlib.metadata, json, os, platform, subprocess, sys
info = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
for mod, dist in (("jax", "jax"), ("jaxlib", "jaxlib"), ("flax", "flax"), ("optax", "optax"),
                  ("orbax.checkpoint", "orbax-checkpoint"), ("numpy", "numpy"), ("cv2", None),
                  ("skimage", "scikit-image"), ("grain", "grain"), ("clu", "clu"),
                  ("ml_collections", "ml-collections"), ("tensorboardX", "tensorboardX"),
                  ("av", "av"), ("torch", "torch"), ("torchvision", "torchvision")):
  try:
    m = __import__(mod, fromlist=["_"])
    info[mod] = getattr(m, "__version__", None) or importlib.metadata.version(dist)
  except Exception as e:
    info[mod] = f"MISSING: {type(e).__name__}"
try:
  import torch
  info["torch_cuda"] = torch.version.cuda
  info["cudnn"] = torch.backends.cudnn.version()
except Exception:
  pass
try:
  info["nvidia_smi"] = subprocess.run(
      ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
       "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except Exception as e:
  info["nvidia_smi"] = None
try:
  import jax
  info["devices"] = [str(d) for d in jax.devices()]
  info["device_kind"] = jax.devices()[0].device_kind
  info["bytes_limit"] = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
except Exception as e:
  info["devices"] = f"FAILED: {e}"
print(json.dumps(info, indent=1))
EOF
ENV_PID=$!
echo "[run] budget ${BUDGET_S}s (parts 1-3 capped at ${P1_S}/${P2_S}/${P3_S}s, part 4 at least ${P4_MIN_S}s), SMOKE=$SMOKE, OUT=$OUT, WORK=$WORK"
HAVE_TORCH=1
python3 -c "import torch" 2>/dev/null || HAVE_TORCH=0
[ -f "$PORT_DIR/model/networks.py" ] || HAVE_TORCH=0
[ $HAVE_TORCH = 1 ] || echo "[run] no torch or no $PORT_DIR (see prepare.sh): the port's side is skipped"

# --- Part 1: DeepFill v2 speed, flowinpaint vs the port ------------------------------------------
P1_END=$(part_end "$P1_S")
BENCH=(python3 -m flowinpaint.bench --config deepfill_v2 --cnum "$CNUM" --iters "$ITERS"
       --warmup "$WARM" --max-seconds 3 --jsonl "$RAW/speed_flowinpaint.jsonl")
task bench_bf16 1 $((P1_END - 40)) 30 -- "${BENCH[@]}" --workloads "$WL" --dtypes bfloat16
# CPU-side preparation for parts 3 and 4 while the GPU does the rest of part 1 and part 2.
bg heldout $((120 * BG_SCALE)) -- env JAX_PLATFORMS=cpu python3 "$KIT/heldout.py" "$HELDOUT"
bg clip $((240 * BG_SCALE)) -- env JAX_PLATFORMS=cpu python3 "$KIT/video_e2e.py" --frames "$V_FRAMES" \
    --size "$V_SIZE" --work "$WORK/video" --make-only
if [ $HAVE_TORCH = 1 ]; then
  task port_speed 1 $((P1_END - 10)) 15 -- python3 "$KIT/port_speed.py" --port "$PORT_DIR" $PORT_OPTS \
      --workloads "$WL" --dtypes bfloat16,float32 --iters "$ITERS" --warmup "$WARM" \
      --max-seconds 3 --jsonl "$RAW/speed_port.jsonl"
fi
task bench_fp32 1 "$P1_END" 20 -- "${BENCH[@]}" --workloads "$WL_FP32" --dtypes float32
wait "$ENV_PID" 2>/dev/null

# --- Part 2: whole generator at 2048 and 4096 -------------------------------------------------
P2_END=$(part_end "$P2_S")
task highres_flowinpaint 2 $((P2_END - 20)) 20 -- python3 "$KIT/highres_gen.py" --cnum "$CNUM" \
    --sizes "$HR_SIZES" $HR_OPTS --dtypes bfloat16 --jsonl "$RAW/highres_flowinpaint.jsonl"
if [ $HAVE_TORCH = 1 ]; then
  task highres_port 2 "$P2_END" 10 -- python3 "$KIT/port_speed.py" --port "$PORT_DIR" $PORT_OPTS \
      --highres "$PORT_HR" --dtypes bfloat16 --jsonl "$RAW/highres_port.jsonl"
fi

# --- Part 3: video removal end to end -------------------------------------------------------------
wait_bg clip
cp "$WORK/video/clip.json" "$RAW/clip.json" 2>/dev/null
P3_END=$(part_end "$P3_S")
task video_e2e 3 "$P3_END" 30 -- python3 "$KIT/video_e2e.py" --frames "$V_FRAMES" --size "$V_SIZE" \
    --work "$WORK/video" --json "$RAW/video_e2e.json" --strip "$RAW/video_strip.png" \
    --timeout $(( P3_END - $(now) - 15 ))

# --- Part 4: training, then evaluate ----------------------------------------------------------------
wait_bg heldout
DATA=(--config.data.dataset=folder --config.data.path="$PACK_DIR")
if [ ! -d "$PACK_DIR" ]; then
  # No pack (prepare.sh not run; a bare checkout in the smoke test): the 8 colour photos that
  # ship with scikit-image, said as such in the table.
  echo "[run] no $PACK_DIR: training on scikit-image's 8 colour photos instead"
  DATA=(--config.data.dataset=embedded)
  python3 - "$RAW/run.json" <<'EOF2'
import json, sys
run = json.load(open(sys.argv[1]))
run["pack_source"] = "NO PACK: scikit-image's 8 colour photos (data.dataset=embedded)"
json.dump(run, open(sys.argv[1], "w"), indent=1)
EOF2
fi
if [ "$SMOKE" = 1 ]; then
  BATCH=${TRAIN_BATCH:-2}; REASON="smoke"
else
  read -r BATCH REASON <<<"$(python3 "$KIT/plan.py" "$RAW" --cap "${TRAIN_BATCH_MAX:-128}" --default 64)"
  [ -n "$BATCH" ] || { BATCH=64; REASON="default (plan.py failed)"; }
  [ -n "${TRAIN_BATCH:-}" ] && { BATCH=$TRAIN_BATCH; REASON="TRAIN_BATCH"; }
fi
EVAL_OPTS=(--images "$HELDOUT" --size "$T_SIZE" --num "$EVAL_NUM")
BASE_LIMIT=$(( $(left) - RESERVE_S - 5 ))
bg eval_telea "$BASE_LIMIT" -- env JAX_PLATFORMS=cpu python3 -m flowinpaint.evaluate --method telea \
    "${EVAL_OPTS[@]}" --output "$RAW/eval_telea.json" --save-images "$RAW/eval_images/telea"
if python3 -m flowinpaint.evaluate --help 2>/dev/null | grep -qw patchmatch; then
  bg eval_patchmatch "$BASE_LIMIT" -- env JAX_PLATFORMS=cpu python3 -m flowinpaint.evaluate \
      --method patchmatch "${EVAL_OPTS[@]}" --output "$RAW/eval_patchmatch.json" \
      --save-images "$RAW/eval_images/patchmatch"
else
  echo "[run] evaluate has no --method patchmatch here: Telea is the only baseline"
fi
attempt=0
while :; do
  RUN=$WORK/train_b$BATCH
  rm -rf "$RUN"
  TRAIN=(python3 -m flowinpaint.main --config configs/deepfill_v2.py --workdir "$RUN"
         --config.dtype=bfloat16 --config.batch_size="$BATCH" --config.image_size="$T_SIZE"
         --config.model.cnum="$CNUM" "${DATA[@]}" --config.data.eval_path="$HELDOUT" --config.data.num_workers="$T_WORKERS"
         --config.num_train_steps="$T_STEPS" --config.log_every_steps=$([ "$SMOKE" = 1 ] && echo 1 || echo 20)
         --config.eval_every_steps=1000000000 --config.checkpoint_every_steps=$([ "$SMOKE" = 1 ] && echo 3 || echo 300)
         --config.keep_checkpoints=2 --config.num_eval_images=4 --config.num_sample_images=4)
  t_start=$(now)
  LAST_RC=
  task train 4 $((DEADLINE - RESERVE_S - EVAL_S)) "$TRAIN_MIN_S" -- "${TRAIN[@]}"
  # Out of memory at the first step: once more at half the batch if 3 minutes are still left.
  if [ -n "$LAST_RC" ] && [ "$LAST_RC" != 0 ] && [ "$LAST_RC" != 124 ] && [ $attempt = 0 ] && \
     grep -q -e RESOURCE_EXHAUSTED -e "out of memory" "$LOGS/train.log" && \
     (( DEADLINE - RESERVE_S - EVAL_S - $(now) >= TRAIN_MIN_S )); then
    attempt=1; BATCH=$((BATCH / 2)); REASON="halved after running out of memory"
    mv "$LOGS/train.log" "$LOGS/train_oom.log"
    continue
  fi
  break
done
python3 - "$RAW/train.json" "$RUN" "$BATCH" "$REASON" "$(( $(now) - t_start ))" \
    "$(( DEADLINE - RESERVE_S - EVAL_S - t_start ))" "${LAST_RC:-skipped}" "${TRAIN[*]}" <<'EOF'
import json, sys
path, run, batch, reason, secs, limit, rc, cmd = sys.argv[1:9]
json.dump({"workdir": run, "batch": int(batch), "batch_reason": reason, "dtype": "bfloat16",
           "seconds": int(secs), "limit_s": int(limit), "rc": rc,
           "command": cmd.replace(run, "WORKDIR")}, open(path, "w"), indent=1)
EOF
if [ -d "$RUN/checkpoints" ]; then
  bg export $((60 * BG_SCALE)) -- env JAX_PLATFORMS=cpu python3 "$KIT/export_generator.py" "$RUN" \
      "$OUT/generator_deepfill_v2.tar.gz"
  task eval_deepfill_v2 4 $((DEADLINE - RESERVE_S)) 10 -- python3 -m flowinpaint.evaluate \
      --checkpoint "$RUN" "${EVAL_OPTS[@]}" --output "$RAW/eval_deepfill_v2.json" \
      --save-images "$RAW/eval_images/deepfill_v2"
  wait_bg export
else
  echo "[run] no checkpoint in $RUN: nothing to evaluate or export"
fi
wait_bg eval_telea
wait_bg eval_patchmatch

pack
echo
echo "================ GPU run: $(( $(now) - START_TS ))s of ${BUDGET_S}s ================"
cat "$OUT/table.md" 2>/dev/null
ls -la "$OUT"
