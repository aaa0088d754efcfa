#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md in one go (about 8 minutes on one H100), each printed and kept in OUT:
#   bash bench/gpu_checks.sh OUT               # on a GPU machine with synthvis installed, from the repo root
#   DEVICE=cpu UPDATES=60 SAMPLES=500 IMAGE=32 BATCH=32 bash bench/gpu_checks.sh OUT   # small, on a CPU
# 1. batch gathering: the host loader against the frames held on the device (84 px, batch 256);
# 2. stage and bare ms/update of the agent (DrQ+BC, 84 px, batch 256, with and without the paper augmentations),
#    diffusion and fine-tuning stages, each stage between two bare timings;
# 3. the denoiser's training step and sampling throughput (SDE-128 and Heun);
# 4. evaluation with 0, 1 and 8 worker processes (the quickstart's 7 envs x 10 episodes; rendering through EGL,
#    the small policy on the CPU).
set -euo pipefail
OUT=${1:?usage: bash bench/gpu_checks.sh OUT}
DEVICE=${DEVICE:-cuda}
UPDATES=${UPDATES:-1000}
SAMPLES=${SAMPLES:-50000}
IMAGE=${IMAGE:-84}
BATCH=${BATCH:-256}
TRAINER=$([ "$DEVICE" = cpu ] && echo trainer=default || echo trainer=gpu)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__,
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" | tee "$OUT/versions.txt"
python bench/datamodule_throughput.py --image-size "$IMAGE" --episodes 40 --batches 50 --device "$DEVICE" \
    | tee "$OUT/datamodule.txt"
python bench/stage_overhead.py --out "$OUT/stage" --updates "$UPDATES" --augments paper none -- "$TRAINER" \
    image_size="$IMAGE" agent=drqbc data.batch_size="$BATCH" sample=karras_sde sample.num_samples="$SAMPLES" \
    2>"$OUT/stage.log" | tee "$OUT/stage.txt"
python bench/diffusion_throughput.py --train-steps 50 --sample-batch "$SAMPLES" --device "$DEVICE" \
    | tee "$OUT/diffusion.txt"
python bench/eval_workers.py --workers 0 1 8 --episodes 10 --repeats 1 2>"$OUT/eval.log" | tee "$OUT/eval.txt"
