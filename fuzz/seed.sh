#!/usr/bin/env bash
# Seeds each fuzz corpus with real inputs: a store's manifests, configs, trees, packs and
# indexes, an exported layout archive, and some names.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/{manifest,index,config,tree,pack_index,pack_scan,layout_tar,tar_reader,names}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
snap=$(cd .. && cargo build -q --release && pwd)/target/release/snap
(cd "$work" && mkdir -p t/sub && for i in $(seq 1 100); do seq 1 $i > t/sub/f$i; done &&
  ln -s sub/f1 t/link && "$snap" commit t > /dev/null 2>&1 &&
  "$snap" commit -C t/sub f1 f2 --ref small > /dev/null 2>&1 &&
  "$snap" export --oci latest small -o layout.tar 2> /dev/null &&
  "$snap" show --manifest latest > m1 && "$snap" show --manifest small > m2)
cp "$work/m1" "$work/m2" corpus/manifest/
cp "$work/layout.tar" corpus/layout_tar/
cp "$work/layout.tar" corpus/tar_reader/
tar -xOf "$work/layout.tar" index.json > corpus/index/index.json
for f in $(find "$work/.store/objects" -type f); do
  b=$(zstd -dc "$f" 2>/dev/null | head -c 16 || true)
  case "$b" in
    '{"root"'*) zstd -dc "$f" > "corpus/config/$(basename "$f")" ;;
    '{"entries"'*) zstd -dc "$f" > "corpus/tree/$(basename "$f")" ;;
  esac
done
for p in "$work"/.store/packs/*.pack; do cp "$p" corpus/pack_scan/; done
for i in "$work"/.store/packs/*.idx; do
  p=${i%.idx}.pack
  { python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<Q', $(stat -c %s "$p")))"; cat "$i"; } > "corpus/pack_index/$(basename "$i")"
done
printf 'ghcr.io/acme/index:v1' > corpus/names/ref
printf 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' > corpus/names/digest
