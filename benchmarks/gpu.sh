#!/usr/bin/env bash
# GPU benchmark: the embedding stage (ir_50, ir_101 x fp32/bf16/fp16 x batch 64/256/1024 against
# the official one-image loop, norm deviation against CPU fp32) and the real workflow end to end
# on ~100,000 synthetic images with one GPU shared by the embed jobs. See benchmarks/README.md
# ("GPU") for the device call, the carried wheels and what each output file holds.
#
#   OUT=/tmp/gpu-out bash benchmarks/gpu.sh                 # on the GPU machine (full sizes)
#   OUT=/tmp/gpu-dry bash benchmarks/gpu.sh --device cpu    # CPU dry run, tiny sizes (~1 min)
#
# Options: --device cuda|cpu (default cuda; also GPU_BENCH_DEVICE), --size full|tiny (default:
# full on cuda, tiny on cpu; also GPU_BENCH_SIZE). Wheels in .whl/ (benchmarks/gpu_wheels.sh) are
# installed with --no-deps into a temporary folder; the machine's torch is used as it is and
# featnorm is imported from src/ (nothing is installed over either).
#
# Writes to $OUT (default: a new temporary folder), at most 8 files, no subfolders:
#   summary.txt          environment, embedding summary, workflow verdict
#   gpu_bench.log        everything the steps printed
#   embed_sweep.csv      one row per arch, precision, batch size (benchmarks/embed.py)
#   embed_summary.csv    best batch size per arch and precision, ratios to the official loop
#   workflow_stages.csv  per rule: jobs, wall, CPU, peak RSS; embed img/s and start-up
#   workflow_timeline.csv  per second: GPU utilisation/memory, running embed/BRISQUE/other jobs
#   workflow.json        the run, occupancy per stage, the bounding stage, row checks
# Each step runs under its own time limit; a step that fails or times out does not stop the
# next, and the script exits non-zero at the end if any did.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${GPU_BENCH_DEVICE:-cuda}
SIZE=${GPU_BENCH_SIZE:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    *) echo "gpu.sh: unknown option '$1'; use --device cuda|cpu, --size full|tiny" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu.sh: --device '$DEVICE'; use cuda or cpu" >&2; exit 2 ;; esac
if [ -z "$SIZE" ]; then SIZE=$([ "$DEVICE" = cuda ] && echo full || echo tiny); fi

if [ "$SIZE" = full ]; then
  # embedding: ~1-2 min on one H200 (estimate); ir_101 and bf16 first, so a run cut short by
  # its limit still holds the figures the goals are about
  EMBED_ARGS=(--arch ir_101 ir_50 --precisions bf16 fp16 fp32 --batch-sizes 64 256 1024
              --images 512 --forward-images 2048 --pipeline-images 4096
              --official-images 128 --deviation-images 64 --workers 8)
  # workflow: 100k images, 8 shards, 2 embed jobs on the GPU at once, BRISQUE on the other cores
  FLOW_ARGS=(--images 100000 --arch ir_101 --precision bf16 --batch-size 256 --workers 3
             --embed-threads 4 --gpu-slots 2 --shards 8 --cores "$(nproc)")
  EMBED_LIMIT_S=130 FLOW_LIMIT_S=230
elif [ "$SIZE" = tiny ]; then
  PRECISIONS=(fp32); [ "$DEVICE" = cuda ] && PRECISIONS=(fp32 bf16 fp16)
  EMBED_ARGS=(--arch ir_demo --precisions "${PRECISIONS[@]}" --batch-sizes 4 8 --images 12
              --forward-images 16 --pipeline-images 16 --official-images 8
              --deviation-images 8 --workers 0 --threads 2)
  # tiny: up to merge_samples (the figures add a minute on 2 cores and nothing GPU-related)
  FLOW_ARGS=(--images 300 --arch ir_demo --precision fp32 --batch-size 16 --workers 1
             --embed-threads 1 --gpu-slots 1 --shards 2 --cores 2 --bootstrap-replicates 50
             --gen-processes 2 --until merge_samples)
  EMBED_LIMIT_S=300 FLOW_LIMIT_S=300
else
  echo "gpu.sh: --size '$SIZE'; use full or tiny" >&2; exit 2
fi

OUT=${OUT:-$(mktemp -d -t featnorm-gpu-out-XXXXXX)}
# dataset, checkpoint, workflow run, wheels: GPU_BENCH_WORK, or a temporary folder removed at exit
if [ -n "${GPU_BENCH_WORK:-}" ]; then
  WORK=$GPU_BENCH_WORK
else
  WORK=$(mktemp -d -t featnorm-gpu-work-XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$OUT" "$WORK"
LOG="$OUT/gpu_bench.log"
SUMMARY="$OUT/summary.txt"
: >"$LOG"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1
status=0

# Python: the machine's python3 (it holds torch); the workflow's rules call `python`
PY=$(command -v python3 || command -v python)
if ! command -v python >/dev/null; then
  mkdir -p "$WORK/bin" && ln -sf "$PY" "$WORK/bin/python" && export PATH="$WORK/bin:$PATH"
fi
# carried wheels (GPU_BENCH_WHEELS, default .whl): installed without dependencies, beside the
# machine's packages, never over them
WHEELS=${GPU_BENCH_WHEELS:-.whl}
SITE=""
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE="$WORK/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl >>"$LOG" 2>&1 || { echo "wheel install failed; see $LOG" >&2; exit 1; }
fi
export PYTHONPATH="$PWD/src${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"

{
  echo "== environment =="
  echo "date: $(date -u +%FT%TZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); size: $SIZE; device: $DEVICE; cores: $(nproc)"
  "$PY" -c 'import sys, torch, featnorm, snakemake; print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda, "| cudnn", torch.backends.cudnn.version(), "| snakemake", snakemake.__version__, "| featnorm from", featnorm.__file__)' 2>&1
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  echo
} | tee -a "$SUMMARY" "$LOG"

LIMIT=(timeout --signal=TERM --kill-after=15)
command -v timeout >/dev/null || { LIMIT=(); echo "no 'timeout' command: steps run without limits" | tee -a "$LOG"; }
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log it, remember a failure
  local name=$1 limit=$2; shift 2
  echo "== $name: $* ==" | tee -a "$LOG"
  local started=$SECONDS rc
  if [ ${#LIMIT[@]} -gt 0 ]; then "${LIMIT[@]}" "$limit" "$@" >>"$LOG" 2>&1; else "$@" >>"$LOG" 2>&1; fi
  rc=$?
  echo "== $name: exit $rc after $((SECONDS - started)) s (limit $limit s) ==" | tee -a "$LOG" "$SUMMARY"
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -n 40 "$LOG"  # the error, in the device call's output_tail too
  fi
}

step embed "$EMBED_LIMIT_S" "$PY" benchmarks/embed.py --device "$DEVICE" --out "$OUT" "${EMBED_ARGS[@]}"
if [ -f "$OUT/embed_summary.csv" ]; then
  { echo "== embedding: best batch per arch and precision =="
    "$PY" -c 'import sys, pandas as pd; print(pd.read_csv(sys.argv[1]).to_string(index=False))' "$OUT/embed_summary.csv"
    echo; } | tee -a "$SUMMARY"
fi
step workflow "$FLOW_LIMIT_S" "$PY" benchmarks/gpu_workflow.py --device "$DEVICE" \
  --work "$WORK" --out "$OUT" --summary "$SUMMARY" "${FLOW_ARGS[@]}"
echo
cat "$SUMMARY"
echo "results in $OUT"
exit $status
