#!/usr/bin/env bash
# Download the wheels benchmarks/gpu.sh needs on the GPU machine (nvidia-h200: Python 3.12,
# x86-64, no internet, no Snakemake) into DEST (default .whl/ in the repository root).
#
#   echo /.whl/ >> .git/info/exclude     # once: the wheels are carried, never committed
#   bash benchmarks/gpu_wheels.sh        # then: du -sh .whl (must stay well under 64 MiB)
#
# The list is Snakemake's dependency closure (pip show snakemake, recursively) minus what the
# machine's image already holds (device KINDS.md: attrs, certifi, charset-normalizer, idna,
# jinja2, markupsafe, psutil, pyyaml, requests, tabulate, urllib3, wrapt), at the versions the
# CPU tests ran with. packaging and typing-extensions are carried although the image has them:
# Snakemake asks for packaging<26 and pydantic for typing-extensions>=4.14.1, and the image's
# versions are not known here. Everything is installed with --no-deps (see gpu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
# the machine's Python; another version only to rehearse the install on a CPU machine
PYTHON_VERSION=${GPU_WHEELS_PYTHON:-3.12}

WHEELS=(
  snakemake==9.27.1
  snakemake-interface-common==1.23.0
  snakemake-interface-executor-plugins==9.4.0
  snakemake-interface-logger-plugins==2.1.0
  snakemake-interface-report-plugins==1.3.0
  snakemake-interface-scheduler-plugins==2.0.2
  snakemake-interface-storage-plugins==4.4.1
  argparse-dataclass==2.0.0
  conda-inject==1.3.2
  configargparse==1.9.0
  docutils==0.22.4
  dpath==2.2.0
  fastjsonschema==2.22.3
  gitdb==4.0.12
  gitpython==3.2.1
  humanfriendly==10.0
  immutables==0.21
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  jupyter-core==5.9.1
  nbformat==5.11.1
  platformdirs==4.14.9
  pulp==3.3.2
  referencing==0.37.0
  rpds-py==0.30.0
  smart-open==7.7.1
  smmap==5.0.3
  sqlmodel==0.0.37
  sqlalchemy==2.0.58
  greenlet==3.5.6
  pydantic==2.13.4
  pydantic-core==2.46.4
  annotated-types==0.7.0
  typing-inspection==0.4.2
  tenacity==9.2.1
  throttler==1.2.3
  traitlets==5.15.0
  yte==1.9.4
  packaging==25.0
  typing-extensions==4.15.0
)

mkdir -p "$DEST"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
# published as a source distribution only; pure Python, so the wheel built here runs there
SOURCE_ONLY=(connection-pool==0.0.3)
python3 -m pip wheel --no-deps -w "$DEST" "${SOURCE_ONLY[@]}"
expected=$(( ${#WHEELS[@]} + ${#SOURCE_ONLY[@]} ))
n=$(find "$DEST" -name '*.whl' | wc -l)
if [ "$n" -ne "$expected" ]; then
  echo "expected $expected wheels in $DEST, found $n (one version of each, please)" >&2
  exit 1
fi
du -sh "$DEST"
