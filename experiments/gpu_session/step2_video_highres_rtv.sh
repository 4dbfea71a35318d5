#!/usr/bin/env bash
# Step 2 (issues 3, 7, 5): video removal speed on the GPU (bench at 432x240 and 854x480, and a
# 250-frame 854x480 clip end to end through `python -m flowinpaint.remove`), DeepFill v2 at
# 4000x3000 (high-resolution strategies), RTV images/s at 256 and 512. Timing only: tasks run one
# after another, nothing else on the GPU.
#
#   bash experiments/gpu_session/step2_video_highres_rtv.sh
#   SMOKE=1 bash experiments/gpu_session/step2_video_highres_rtv.sh
#
# Knobs: BUDGET_S (default 390), E2E_FRAMES (250).
cd "$(dirname "$0")/../.." || exit 2
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} || { echo "wheel install failed"; exit 3; }
fi
source experiments/gpu_session/common.sh step2 390

if [ "$SMOKE" = 1 ]; then
  V1="--size 128x72 --frames 6 --clips 1"; V2="--size 160x96 --frames 6 --clips 1"
  E2E="--frames ${E2E_FRAMES:-12} --size 160x96"
  HR="--size 800x600 --repeats 1"; RTV1="--sizes 32 --batch 2 --repeats 1"
  RTV2="--sizes 48 --batch 1 --repeats 1"
else
  V1="--size 432x240 --frames 24 --clips 3"; V2="--size 854x480 --frames 16 --clips 1"
  E2E="--frames ${E2E_FRAMES:-250} --size 854x480"
  HR="--size 4000x3000 --repeats 2"; RTV1="--sizes 256 --batch 8 --repeats 5"
  RTV2="--sizes 512 --batch 8 --repeats 3"
fi

# 1. RTV at 256 (issue 5: images/s on the GPU), StructureFlow's settings.
task rtv_256 90 20 -- python3 experiments/rtv/bench.py $RTV1

# 2. Video bench at 432x240 (issue 3: GPU speed column per stage + quality), 3 clips x 24 frames.
task video_bench_432 150 40 -- python3 experiments/video_removal/bench.py $V1 \
    --strip "$RAW/images/a_strip_432x240.png" --json "$RAW/video_bench_432.jsonl"

# 3. 250 frames at 854x480 through the command-line tool, mp4 in and out (issue 3: < 5 min).
#    It gets the rest of the budget less 100 s for the tasks after it, at most 320 s.
E2E_CAP=$(( $(left) - RESERVE_S - 100 ))
(( E2E_CAP > 320 )) && E2E_CAP=320
task video_e2e $E2E_CAP 90 -- python3 $GS/video_e2e.py $E2E --work "$WORK/video_e2e" \
    --json "$RAW/video_e2e.json" --strip "$RAW/images/b_strip_e2e.png" --budget $((E2E_CAP - 10))

# 4. 4000x3000 photo with five holes (issue 7): DeepFill v2 (cnum 24 as the CPU rows, random
#    weights) with the default strategy (here: crops); the first run includes the compiles.
task highres_auto 100 30 -- python3 experiments/highres/bench.py --inpainter deepfill_v2 \
    --strategy auto $HR --json "$RAW/highres.jsonl"

# 5. Video bench at 854x480 (1 clip x 16 frames).
task video_bench_854 100 40 -- python3 experiments/video_removal/bench.py $V2 \
    --json "$RAW/video_bench_854.jsonl"

# 6. RTV at 512, then the resize strategy at 4000x3000.
task rtv_512 60 20 -- python3 experiments/rtv/bench.py $RTV2
task highres_resize 80 30 -- python3 experiments/highres/bench.py --inpainter deepfill_v2 \
    --strategy resize $HR --json "$RAW/highres.jsonl"

finish
