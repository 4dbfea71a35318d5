#!/usr/bin/env bash
# Step 4 (issues 4 and 6; optional, if the device budget allows): the model zoo's inference and
# train-step speed rows on an otherwise idle GPU (each model with its own config), then the flow
# network (configs/flow_net.py: 5-level PWC, 256 px) and DFC-Net (configs/dfc_net.py: three
# dilated ResNet-50 stages, 256 px) trained side by side for N_FLOW steps, then
# experiments/flow/bench.py: EPE vs DIS / Farneback, DFC-Net vs Laplacian completion, removal
# quality, pairs/s and frames/s on the GPU.
#
#   bash experiments/gpu_session/step4_speed_flow.sh
#   SMOKE=1 bash experiments/gpu_session/step4_speed_flow.sh
#
# Knobs: BUDGET_S (default 330), N_FLOW (300), DFC_BATCH (8), SPEED_MODELS.
cd "$(dirname "$0")/../.." || exit 2
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} || { echo "wheel install failed"; exit 3; }
fi
source experiments/gpu_session/common.sh step4 330

if [ "$SMOKE" = 1 ]; then
  SPEED="--workloads infer:32:2,train:32:2 --iters 2 --warmup 0"
  MODELS=${SPEED_MODELS:-pconv}
  NF=${N_FLOW:-4}; FCFG=configs/flow_net_tiny.py; DCFG=configs/dfc_net_tiny.py
  FLOW_OPTS="--config.image_size=32 --config.batch_size=2 --config.num_eval_images=4"
  DFC_OPTS="--config.batch_size=2 --config.num_eval_images=4"
  FB="--sizes 32 --num 4"
else
  SPEED="--workloads infer:256:16,train:256:16 --iters 20 --warmup 3 --max-seconds 10"
  MODELS=${SPEED_MODELS:-deepfill_v1,glcic,pconv}
  NF=${N_FLOW:-300}; FCFG=configs/flow_net.py; DCFG=configs/dfc_net.py
  FLOW_OPTS="--config.data.num_workers=4"
  DFC_OPTS="--config.batch_size=${DFC_BATCH:-8} --config.data.num_workers=4"
  FB="--sizes 64 128 --num 32"
fi
fhalf=$(( NF / 2 > 0 ? NF / 2 : 1 )); flog=$(( NF / 10 > 0 ? NF / 10 : 1 ))
FCOMMON="--config.num_train_steps=$NF --config.log_every_steps=$flog \
 --config.eval_every_steps=$fhalf --config.checkpoint_every_steps=$fhalf --config.keep_checkpoints=2"

# 1. Speed rows (issue 4), fp32, alone on the GPU: infer 256 b16 and train step 256 b16.
task speed_zoo_fp32 170 40 -- python3 $GS/speed.py --configs $MODELS $SPEED --dtypes float32 \
    --jsonl "$RAW/speed_zoo.jsonl"

# 2. Flow network and DFC-Net at the reference configs' size, side by side (issue 6).
F=$WORK/flow
printf 'flow_net\t%s\ndfc_net\t%s\n' "$F/flow_net" "$F/dfc_net" > "$RAW/trainings.txt"
FLOW_BENCH_RESERVE=$([ "$SMOKE" = 1 ] && echo 90 || echo 100)
cap=$(( $(left) - RESERVE_S - FLOW_BENCH_RESERVE ))
export XLA_PYTHON_CLIENT_PREALLOCATE=false
task train_flow_net $cap 45 -- python3 -m flowinpaint.main --config $FCFG --workdir "$F/flow_net" \
    $FCOMMON $FLOW_OPTS &
task train_dfc_net $cap 45 -- python3 -m flowinpaint.main --config $DCFG --workdir "$F/dfc_net" \
    $FCOMMON $DFC_OPTS &
wait
unset XLA_PYTHON_CLIENT_PREALLOCATE

# 3. EPE / completion / removal tables with the trained networks, speeds on this device.
if [ -d "$F/flow_net/checkpoints" ] && [ -d "$F/dfc_net/checkpoints" ]; then
  task flow_bench $(( $(left) - RESERVE_S )) 30 -- python3 experiments/flow/bench.py \
      --flow-ckpt "$F/flow_net" --dfc-ckpt "$F/dfc_net" $FB --out "$RAW/flow_results.json"
else
  echo "[step4] SKIP flow_bench: a flow training left no checkpoint"
fi

# 4. If time is left: the bf16 speed rows.
task speed_zoo_bf16 120 40 -- python3 $GS/speed.py --configs $MODELS $SPEED --dtypes bfloat16 \
    --jsonl "$RAW/speed_zoo.jsonl"

finish
