#!/usr/bin/env bash
# Run once on the CPU machine, in the checkout that the GPU session's `run` call sends (the
# session's own repository), before that call. It makes the three ignored folders the run
# carries, then measures what travels (the run tool carries 64 MiB in all: tracked and
# untracked-not-ignored files plus the carried folders):
#
#   .whl/                    wheels of what the GPU host lacks (../shared/gpu/device-has.txt):
#                            ml-collections, clu, grain (+ array-record, portpicker),
#                            tensorboardX, av (PyAV: mp4 in and out of flowinpaint.remove)
#   .peer/deepfillv2-pytorch the PyTorch port's model/ (nipponjo/deepfillv2-pytorch) + COMMIT;
#                            never committed, imported by port_speed.py at run time
#   .pack/images             training photos for part 4: KDE's plasma-workspace-wallpapers (a
#                            Debian package, GPL-2+), cut into 512 px JPEGs by make_pack.py to
#                            fit what is left of the 64 MiB (at most 40 MiB); .pack/SOURCE.txt
#
#   bash experiments/gpu_session/prepare.sh [PORT_SRC]
#
# PORT_SRC: a checkout of nipponjo/deepfillv2-pytorch (a folder with model/networks.py) or a bare
# git directory of it, such as the `fetch` tool's /work/.mirror/nipponjo+deepfillv2-pytorch/repo
# (the default when it exists). Knobs: SKIP_WHEELS=1 (keep .whl), SKIP_PACK=1 (keep .pack),
# PACK_DEB=file.deb (use this .deb instead of `apt-get download`), PACK_MAX_MIB (default 40).
# Never installs the package; only plasma-workspace-wallpapers is accepted as the pack's source.
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"
KIT=experiments/gpu_session
LIMIT_MIB=64
MARGIN_MIB=${MARGIN_MIB:-1.5}   # Room for commits made between this and the run.

# 1. The carried folders must be ignored (else they would travel as untracked files anyway,
#    and could be committed by mistake). .gitignore lists them; older checkouts get exclude.
EXCLUDE=$(git rev-parse --git-path info/exclude)
for d in .whl .peer .pack; do
  if ! git check-ignore -q "$d/x"; then
    mkdir -p "$(dirname "$EXCLUDE")"
    echo "/$d/" >> "$EXCLUDE"
  fi
done

# 2. Wheels (names and versions: those the CPU machine runs, which the smoke test used).
if [ "${SKIP_WHEELS:-0}" != 1 ] || [ ! -d .whl ]; then
  MAKE=${MAKE_WHEELS:-$ROOT/../shared/gpu/make-wheels.sh}
  [ -x "$MAKE" ] || MAKE=/work/shared/gpu/make-wheels.sh
  rm -rf .whl
  "$MAKE" ml-collections==1.1.0 clu==0.0.12 grain==0.2.18 tensorboardX==2.6.5 av==18.1.0 \
      portpicker array-record
fi
# Every wheel must be for the GPU host (py3-none-any or cp312 manylinux x86_64), one per name.
bad=$(ls .whl | grep -vE -- '-(py3-none-any|py2\.py3-none-any|cp312-cp312-manylinux[^ ]*x86_64|cp3[0-9]*-abi3-manylinux[^ ]*x86_64)\.whl$' || true)
[ -z "$bad" ] || { echo "wheels not for the GPU host: $bad"; exit 1; }
dups=$(ls .whl | cut -d- -f1 | tr 'A-Z_.' 'a-z--' | sort | uniq -d)
[ -z "$dups" ] || { echo "two versions of: $dups"; exit 1; }
for need in ml_collections clu grain tensorboardX av portpicker array_record; do
  ls .whl | grep -qi "^${need}-" || { echo "missing wheel: $need"; exit 1; }
done

# 3. The PyTorch port: its model/ package only (the rest is a web app and example images).
PORT_SRC=${1:-${PORT_SRC:-/work/.mirror/nipponjo+deepfillv2-pytorch/repo}}
PEER=.peer/deepfillv2-pytorch
rm -rf "$PEER"
mkdir -p "$PEER"
if [ -f "$PORT_SRC/model/networks.py" ]; then
  cp -r "$PORT_SRC/model" "$PEER/"
  [ -f "$PORT_SRC/README.md" ] && cp "$PORT_SRC/README.md" "$PEER/"
  git -C "$PORT_SRC" rev-parse HEAD > "$PEER/COMMIT" 2>/dev/null || echo unknown > "$PEER/COMMIT"
elif git --git-dir="$PORT_SRC" rev-parse HEAD >/dev/null 2>&1; then
  git --git-dir="$PORT_SRC" archive HEAD model README.md | tar -x -C "$PEER"
  git --git-dir="$PORT_SRC" rev-parse HEAD > "$PEER/COMMIT"
else
  echo "no checkout of nipponjo/deepfillv2-pytorch at '$PORT_SRC': pass one (a folder with"
  echo "model/networks.py, or the bare git dir the fetch tool gives for"
  echo "github:nipponjo/deepfillv2-pytorch) as the first argument"
  exit 1
fi
find "$PEER" -name '__pycache__' -prune -exec rm -rf {} +
echo "port: $PEER at $(cat "$PEER/COMMIT")"

# What travels, in bytes: tracked + untracked-not-ignored files (+ shared/ inside the checkout)
# and the carried folders.
sizes() {
  python3 - "$@" <<'EOF'
import os, subprocess, sys
def tree(path):
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                 if not os.path.islink(os.path.join(root, f)))
  return total
names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, check=True).stdout.split(b"\0")
files = sum(os.path.getsize(n) for n in names if n and os.path.isfile(n))
shared = tree("shared") if os.path.isdir("shared") else 0
carried = {d: tree(d) for d in sys.argv[1:]}
print(files + shared, *(carried[d] for d in sys.argv[1:]))
EOF
}

# 4. The image pack, sized to what is left.
if [ "${SKIP_PACK:-0}" != 1 ] || [ ! -d .pack/images ]; then
  read -r TREE WHL PEERB <<<"$(sizes .whl .peer)"
  LEFT=$(python3 -c "print(round(min(${PACK_MAX_MIB:-40}, $LIMIT_MIB - $MARGIN_MIB - ($TREE + $WHL + $PEERB) / 2**20), 1))")
  echo "room for the image pack: $LEFT MiB"
  python3 -c "import sys; sys.exit(0 if $LEFT >= 3 else 1)" \
    || { echo "less than 3 MiB left for the image pack: the tree or the wheels grew"; exit 1; }
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  if [ -n "${PACK_DEB:-}" ]; then
    cp "$PACK_DEB" "$TMP/"
  else
    (cd "$TMP" && apt-get download plasma-workspace-wallpapers 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
  fi
  DEB=$(ls "$TMP"/*.deb | head -1)
  PKG=$(dpkg-deb -f "$DEB" Package)
  [ "$PKG" = plasma-workspace-wallpapers ] \
    || { echo "refused: $(basename "$DEB") is package $PKG, not plasma-workspace-wallpapers"; exit 1; }
  dpkg -x "$DEB" "$TMP/x"
  SRC_LINE="$(dpkg-deb -f "$DEB" Package) $(dpkg-deb -f "$DEB" Version) (Debian package, $(basename "$DEB"), sha256 $(sha256sum "$DEB" | cut -c1-16)...; license GPL-2+, KDE Visual Design Group)"
  rm -rf .pack
  python3 "$KIT/make_pack.py" --src "$TMP/x" --out .pack/images --max-mib "$LEFT" --source "$SRC_LINE"
fi

read -r TREE WHL PEERB PACKB <<<"$(sizes .whl .peer .pack)"
python3 - "$TREE" "$WHL" "$PEERB" "$PACKB" "$LIMIT_MIB" <<'EOF'
import sys
tree, whl, peer, pack, limit = (int(v) for v in sys.argv[1:])
mib = lambda b: b / 2**20
total = tree + whl + peer + pack
print(f"travels: tree {mib(tree):.1f} MiB + .whl {mib(whl):.1f} + .peer {mib(peer):.2f} + "
      f".pack {mib(pack):.1f} = {mib(total):.1f} MiB of {limit} MiB")
sys.exit(0 if total <= limit * 2**20 else 1)
EOF
echo "ready: the run call is in experiments/gpu_session/README.md"
