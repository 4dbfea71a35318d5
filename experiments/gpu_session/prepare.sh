#!/usr/bin/env bash
# Run on the CPU machine, from anywhere: builds .whl/ at the repository root with the Python
# packages that flowinpaint imports on the paths of the step scripts and that the GPU host lacks
# (../shared/gpu/device-has.txt), then lists them and their size (the run tool carries 64 MiB in
# all, working tree included).
#
# Which packages: every module imported by the step scripts' code paths was mapped to its
# distribution on this machine and compared with device-has.txt (see README.md, "Wheels"):
#   ml-collections  configs, main, stages, checkpointing, evaluate, bench
#   clu             train.steps (clu.metrics), train.train (parameter_overview)
#   grain           data.pipeline, data.flow_pipeline (hard-imports portpicker, array_record)
#   tensorboardX    train.reporting (TensorBoard events; boto3 is optional there, left out)
#   av (PyAV)       video.io (video files in remove)
# Versions pinned to the ones this CPU machine runs (the smoke tests ran against them).
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
MAKE=${MAKE_WHEELS:-$ROOT/../shared/gpu/make-wheels.sh}
[ -x "$MAKE" ] || MAKE=/work/shared/gpu/make-wheels.sh
rm -rf .whl
"$MAKE" ml-collections==1.1.0 clu==0.0.12 grain==0.2.18 tensorboardX==2.6.5 av==18.1.0 \
    portpicker array-record
# Every wheel must be for the GPU host (py3-none-any or cp312 manylinux x86_64), one per name.
bad=$(ls .whl | grep -vE -- '-(py3-none-any|py2\.py3-none-any|cp312-cp312-manylinux[^ ]*x86_64|cp3[0-9]*-abi3-manylinux[^ ]*x86_64)\.whl$' || true)
[ -z "$bad" ] || { echo "wheels not for the GPU host: $bad"; exit 1; }
dups=$(ls .whl | cut -d- -f1 | tr 'A-Z_.' 'a-z--' | sort | uniq -d)
[ -z "$dups" ] || { echo "two versions of: $dups"; exit 1; }
for need in ml_collections clu grain tensorboardX av portpicker array_record; do
  ls .whl | grep -qi "^${need}-" || { echo "missing wheel: $need"; exit 1; }
done
echo "wheels: $(ls .whl | wc -l) files, $(du -sm .whl | cut -f1) MiB"
echo "working tree that travels: $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes tracked + .whl"
