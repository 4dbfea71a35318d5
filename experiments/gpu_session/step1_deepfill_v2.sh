#!/usr/bin/env bash
# Step 1 (issue 2): DeepFill v2 benchmark table vs the PyTorch reference, then a short DeepFill v2
# training on the GPU with sample grids, scored on the held-out folder (also the DeepFill v2 row
# of the model-zoo table: same N_ZOO steps, batch 16, 256 px as step 3's models).
#
#   bash experiments/gpu_session/step1_deepfill_v2.sh            # on the GPU host (run tool)
#   SMOKE=1 bash experiments/gpu_session/step1_deepfill_v2.sh    # tiny, on a CPU
#
# Knobs: BUDGET_S (default 360), N_ZOO (training steps, default 400), BENCH_ITERS (50).
cd "$(dirname "$0")/../.." || exit 2
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} || { echo "wheel install failed"; exit 3; }
fi
source experiments/gpu_session/common.sh step1 360

if [ "$SMOKE" = 1 ]; then
  N=${N_ZOO:-4}; CNUM=8
  WL=infer:64:2,train:32:2; ITERS=2; WARM=0
  SIZE=64; BATCH=2; EVAL_NUM=4; WORKERS=0
  EXTRA_WL=infer:64:1
else
  N=${N_ZOO:-400}; CNUM=48
  WL=infer:256:16,infer:512:1,train:256:16; ITERS=${BENCH_ITERS:-50}; WARM=5
  SIZE=256; BATCH=16; EVAL_NUM=20; WORKERS=4
  EXTRA_WL=infer:1024:1,infer:512:8,train:256:32
fi
write_heldout

# 1. The issue's benchmark: 3 workloads x fp32/bf16, paper width (cnum 48, 4.05 M params).
task bench_deepfill_v2 230 60 -- python3 -m flowinpaint.bench --model deepfill_v2 --cnum $CNUM \
    --workloads $WL --dtypes float32,bfloat16 --iters $ITERS --warmup $WARM \
    --json "$RAW/bench_deepfill_v2.json"

# 2. Short training (configs/deepfill_v2.py: cnum 48, 256 px, batch 16, hinge + L1, Adam) on the
#    embedded photos; the trainer evaluates and draws its sample grid on held-out images.
RUN=$WORK/zoo/deepfill_v2
printf 'deepfill_v2\t%s\n' "$RUN" > "$RAW/trainings.txt"
EVAL_RESERVE=$([ "$SMOKE" = 1 ] && echo 40 || echo 75)
TRAIN_CAP=$(( $(left) - RESERVE_S - EVAL_RESERVE ))
task train_deepfill_v2 $TRAIN_CAP 60 -- python3 -m flowinpaint.main --config configs/deepfill_v2.py \
    --workdir "$RUN" --config.num_train_steps=$N --config.batch_size=$BATCH \
    --config.image_size=$SIZE --config.model.cnum=$CNUM --config.data.num_workers=$WORKERS \
    --config.data.eval_path="$HELDOUT" --config.num_eval_images=8 --config.num_sample_images=4 \
    --config.log_every_steps=$(( N / 12 > 0 ? N / 12 : 1 )) \
    --config.eval_every_steps=$(( N / 2 > 0 ? N / 2 : 1 )) \
    --config.checkpoint_every_steps=$(( N / 2 > 0 ? N / 2 : 1 )) --config.keep_checkpoints=2

# 3. Held-out evaluation table (the evaluate tool's computation) + grid; Telea as the baseline.
task eval_heldout 120 20 -- python3 $GS/eval_heldout.py --images "$HELDOUT" --size $SIZE \
    --num $EVAL_NUM --jsonl "$RAW/eval.jsonl" --grid-dir "$RAW/images" \
    deepfill_v2="$RUN" telea=telea

# 4. If time is left: the reference's other rows (1024 b1, 512 b8, train b32).
task bench_deepfill_v2_extra 150 60 -- python3 -m flowinpaint.bench --model deepfill_v2 \
    --cnum $CNUM --workloads $EXTRA_WL --dtypes float32,bfloat16 --iters 20 --warmup 3 \
    --json "$RAW/bench_deepfill_v2_extra.json"

finish
