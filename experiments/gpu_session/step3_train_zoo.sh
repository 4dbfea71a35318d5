#!/usr/bin/env bash
# Step 3 (issues 4 and 5): same-budget short trainings of DeepFill v1, GLCIC and PConv (N_ZOO
# steps, batch 16, 256 px, the embedded photos: DeepFill v2 got the same in step 1), and the full
# StructureFlow pipeline (stage 1 structure reconstructor and stage 2 texture generator side by
# side, then stage 3 joint fine-tuning from both: configs/structure_flow_stage{1,2,3}.py, the
# stages configs/structure_flow.py chains), then the held-out evaluation table and grids of all.
# The trainings share the GPU (separate processes, XLA_PYTHON_CLIENT_PREALLOCATE=false), so
# their steps/s are not speed figures (step 4 measures those alone).
#
#   bash experiments/gpu_session/step3_train_zoo.sh
#   SMOKE=1 bash experiments/gpu_session/step3_train_zoo.sh
#
# Knobs: BUDGET_S (default 540; SMOKE 720), N_ZOO (400), N_SF (steps per StructureFlow stage, 100),
# SF_MODE=parallel|chain (chain: `main --config configs/structure_flow.py`, stages in series).
cd "$(dirname "$0")/../.." || exit 2
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} || { echo "wheel install failed"; exit 3; }
fi
[ "${SMOKE:-0}" = 1 ] && : "${BUDGET_S:=720}"  # 5 compiles at once on a 2-core CPU are slow.
source experiments/gpu_session/common.sh step3 540
export XLA_PYTHON_CLIENT_PREALLOCATE=false
TAIL_LINES=6

if [ "$SMOKE" = 1 ]; then
  N=${N_ZOO:-4}; NSF=${N_SF:-2}; SIZE=32; BATCH=4; SFB=2; WORKERS=0; EVAL_NUM=4
  V1="--config.model.cnum=8 --config.model.d_cnum=8"
  GL="--config.model.width=0.125 --config.model.d_width=0.125 --config.model.fc_units=64"
  PC="--config.model.cnum=8 --config.model.depth=4"
  SFW="--config.model.width=8 --config.model.d_width=8 --config.model.n_res=1 --config.model.texture_n_res=1"
  EVAL_RESERVE=60
else
  N=${N_ZOO:-400}; NSF=${N_SF:-100}; SIZE=256; BATCH=16; SFB=8; WORKERS=2; EVAL_NUM=20
  V1=""; GL=""; PC=""; SFW=""
  EVAL_RESERVE=110
fi
half=$(( N / 2 > 0 ? N / 2 : 1 )); log=$(( N / 10 > 0 ? N / 10 : 1 ))
COMMON="--config.num_train_steps=$N --config.batch_size=$BATCH --config.image_size=$SIZE \
 --config.data.num_workers=$WORKERS --config.data.eval_path=$HELDOUT --config.num_eval_images=8 \
 --config.num_sample_images=4 --config.log_every_steps=$log --config.eval_every_steps=$half \
 --config.checkpoint_every_steps=$half --config.keep_checkpoints=2"
sfhalf=$(( NSF / 2 > 0 ? NSF / 2 : 1 )); sflog=$(( NSF / 6 > 0 ? NSF / 6 : 1 ))
SFCOMMON="--config.num_train_steps=$NSF --config.batch_size=$SFB --config.image_size=$SIZE \
 --config.data.num_workers=$WORKERS --config.data.eval_path=$HELDOUT --config.num_eval_images=8 \
 --config.num_sample_images=4 --config.log_every_steps=$sflog --config.eval_every_steps=$sfhalf \
 --config.checkpoint_every_steps=$sfhalf --config.keep_checkpoints=2 $SFW"
write_heldout

Z=$WORK/zoo
SF=$WORK/structure_flow
{
  [ -d "$Z/deepfill_v2/checkpoints" ] && printf 'deepfill_v2\t%s\n' "$Z/deepfill_v2"
  printf 'deepfill_v1\t%s\nglcic\t%s\npconv\t%s\nstructure_flow\t%s\n' \
      "$Z/deepfill_v1" "$Z/glcic" "$Z/pconv" "$SF"
} > "$RAW/trainings.txt"
# The chain's layout (WORKDIR/<stage>, stages.json naming the last): evaluate/inpaint take $SF.
mkdir -p "$SF"
echo '{"stages": ["structure", "texture", "joint"], "final": "joint"}' > "$SF/stages.json"

TRAIN_CAP=$(( $(left) - RESERVE_S - EVAL_RESERVE ))
# GLCIC's schedule scaled to the budget (paper 90k / 10k / 400k of 500k steps).
GP=$(( N * 18 / 100 )); GD=$(( N * 2 / 100 > 0 ? N * 2 / 100 : 1 ))

task train_deepfill_v1 $TRAIN_CAP 60 -- python3 -m flowinpaint.main --config configs/deepfill_v1.py \
    --workdir "$Z/deepfill_v1" $COMMON $V1 &
task train_glcic $TRAIN_CAP 60 -- python3 -m flowinpaint.main --config configs/glcic.py \
    --workdir "$Z/glcic" $COMMON $GL --config.phases.reconstruction_steps=$GP \
    --config.phases.discriminator_steps=$GD &
task train_pconv $TRAIN_CAP 60 -- python3 -m flowinpaint.main --config configs/pconv.py \
    --workdir "$Z/pconv" $COMMON $PC &
if [ "${SF_MODE:-parallel}" = chain ]; then
  task train_structure_flow_chain $TRAIN_CAP 60 -- python3 -m flowinpaint.main \
      --config configs/structure_flow.py --workdir "$SF" $SFCOMMON &
else
  (
    task train_sf_structure $TRAIN_CAP 60 -- python3 -m flowinpaint.main \
        --config configs/structure_flow_stage1.py --workdir "$SF/structure" $SFCOMMON &
    task train_sf_texture $TRAIN_CAP 60 -- python3 -m flowinpaint.main \
        --config configs/structure_flow_stage2.py --workdir "$SF/texture" $SFCOMMON &
    wait
    cap=$(( $(left) - RESERVE_S - EVAL_RESERVE ))
    if [ -d "$SF/structure/checkpoints" ] && [ -d "$SF/texture/checkpoints" ]; then
      task train_sf_joint $cap 45 -- python3 -m flowinpaint.main \
          --config configs/structure_flow_stage3.py --workdir "$SF/joint" $SFCOMMON \
          --config.init_generator_from="structure=$SF/structure,texture=$SF/texture"
    else
      echo "[step3] SKIP train_sf_joint: stage 1 or 2 left no checkpoint"
    fi
  ) &
fi
wait
pack

# Held-out evaluation, one process per model side by side; StructureFlow: the last stage that
# saved (joint, else texture).
SF_EVAL=$SF
[ -d "$SF/joint/checkpoints" ] || SF_EVAL=$SF/texture
for item in "deepfill_v1=$Z/deepfill_v1" "glcic=$Z/glcic" "pconv=$Z/pconv" \
            "structure_flow=$SF_EVAL" "telea=telea"; do
  name=${item%%=*}
  task eval_$name $(( $(left) - RESERVE_S )) 15 -- python3 $GS/eval_heldout.py --images "$HELDOUT" \
      --size $SIZE --num $EVAL_NUM --jsonl "$RAW/eval_$name.jsonl" --grid-dir "$RAW/images" "$item" &
done
if [ -d "$Z/deepfill_v2/checkpoints" ]; then  # Step 1's run, when this machine still has it.
  task eval_deepfill_v2 $(( $(left) - RESERVE_S )) 15 -- python3 $GS/eval_heldout.py \
      --images "$HELDOUT" --size $SIZE --num $EVAL_NUM --jsonl "$RAW/eval_deepfill_v2.jsonl" \
      --grid-dir "$RAW/images" "deepfill_v2=$Z/deepfill_v2" &
fi
wait
finish
