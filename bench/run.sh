#!/usr/bin/env bash
# snap's benchmark: commit, recommit unchanged and restore a realistic tree, each beside a
# baseline measured in the same run, reported as ratios (this machine is shared and noisy).
#
# Usage: bench/run.sh [--corpus DIR] [--next DIR] [--quick] [--runs N] [--big] [--scaling]
#                     [--incremental]
#   --corpus DIR  the tree to snapshot (default: a rustup toolchain's share/doc, ~52k files)
#   --next DIR    a "next version" of it (default: another toolchain's share/doc, if any)
#   --quick       a generated 5,000-file tree instead (a smoke run, ~1 minute)
#   --runs N      repetitions per timed command; the median is reported (default 3)
#   --big         also a ~200 MB binary (a toolchain's libLLVM) and a 4 GiB file: time and RSS
#   --scaling     also 1k, 10k, 100k and 1M tiny files: time and memory per file
#   --incremental only issue 20's rows: one file and 1 % changed in the corpus, one changed
#                 among 300,000 small files (vs git), 1,000,000 tiny files recommitted right
#                 after they were written (the corpus rows also run by default)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
corpus="" next="" quick=0 runs=3 big=0 scaling=0 incremental=0
while [ $# -gt 0 ]; do
  case $1 in
    --corpus) corpus=$2; shift 2 ;;
    --next) next=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --big) big=1; shift ;;
    --scaling) scaling=1; shift ;;
    --incremental) incremental=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

for tool in zstd tar find cp python3 du umoci curl restic git; do
  if ! command -v "$tool" >/dev/null; then
    if { [ "$tool" = zstd ] || [ "$tool" = umoci ] || [ "$tool" = restic ]; } && [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq "$tool" >/dev/null
    else
      echo "bench needs $tool: apt-get install -y $tool" >&2; exit 2
    fi
  fi
done
timer=/usr/bin/time
if [ ! -x $timer ] && [ "$(id -u)" = 0 ]; then apt-get install -y -qq time >/dev/null; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/snap-bench.XXXXXX")   # TMPDIR=/dev/shm: no disk in the numbers
trap 'rm -rf "$work"' EXIT

generate() { # DIR FILES SEED: a tree shaped like generated HTML docs
  python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
words = ["fn", "struct", "impl", "trait", "pub", "mod", "use", "self", "crate", "where",
         "<div class=\"item\">", "</div>", "<a href=\"#\">", "</a>", "Iterator", "Option"]
dirs = [os.path.join(root, f"d{i:03}", f"s{j:02}") for i in range(max(1, n // 1400)) for j in range(36)]
for d in dirs: os.makedirs(d, exist_ok=True)
for i in range(n):
    d = dirs[i % len(dirs)]
    if i % 2000 == 7:
        size = rnd.randint(1 << 20, 8 << 20)
    else:
        size = int(rnd.lognormvariate(8.3, 1.0)) % (64 << 10)
    body = " ".join(rnd.choice(words) for _ in range(size // 5 + 1))[:size]
    with open(os.path.join(d, f"page{i:06}.html"), "w") as f: f.write(body)
PY
}

if [ $quick = 1 ]; then
  corpus="$work/generated"; generate "$corpus" 5000 1
  next="$work/generated-next"; generate "$next" 5000 2
elif [ -z "$corpus" ]; then
  for t in "$HOME"/.rustup/toolchains/1.95.0-*/share/doc "$HOME"/.rustup/toolchains/stable-*/share/doc "$HOME"/.rustup/toolchains/*/share/doc; do
    if [ -d "$t" ]; then corpus=$t; break; fi
  done
  if [ -z "$next" ]; then
    for t in "$HOME"/.rustup/toolchains/nightly-*/share/doc; do
      if [ -d "$t" ] && [ "$t" != "$corpus" ]; then next=$t; break; fi
    done
  fi
  if [ -z "$corpus" ]; then
    echo "no rustup docs found: generating a 50,000-file tree" >&2
    corpus="$work/generated"; generate "$corpus" 50000 1
    next="$work/generated-next"; generate "$next" 50000 2
  fi
fi

echo "building snap (release)..." >&2
(cd "$here" && cargo build --release -q)
snap="$here/target/release/snap"
export SOURCE_DATE_EPOCH=1767225600 NO_COLOR=1

cd "$work"
cp -a "$corpus" corpus
files=$(find corpus -type f | wc -l)
bytes=$(du -sb corpus | cut -f1)
tar -cf - corpus > /dev/null   # warm the page cache

now() { date +%s.%N; }
# median_time CMD...: run CMD $runs times (after its optional setup), print the median seconds.
median_time() {
  local setup=$1; shift
  local ts=()
  for _ in $(seq "$runs"); do
    eval "$setup"
    sync   # start every run with no dirty pages left by the previous one
    local t0; t0=$(now)
    "$@" > /dev/null 2>&1
    ts+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')")
  done
  printf '%s\n' "${ts[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p"
}

# pair SETUP_A CMD_A SETUP_B CMD_B: alternate A and B $runs times each (A, B, A, B, ...)
# so drift in the machine's state hits both alike; sets $pa and $pb to their medians.
pair() {
  local sa=$1 ca=$2 sb=$3 cb=$4 ta=() tb=() t0
  for _ in $(seq "$runs"); do
    eval "$sa"; sync; t0=$(now); eval "$ca" > /dev/null 2>&1
    ta+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')")
    eval "$sb"; sync; t0=$(now); eval "$cb" > /dev/null 2>&1
    tb+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')")
  done
  pa=$(printf '%s\n' "${ta[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
  pb=$(printf '%s\n' "${tb[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
}

rows=()
row() { # scenario snap baseline goal
  local ratio result
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
  if [ "$4" = - ]; then
    rows+=("| $1 | $(printf '%.2f' "$2") s | $(printf '%.2f' "$3") s | ${ratio}× | (report) | |")
    return
  fi
  result=$(awk -v r="$ratio" -v g="$4" 'BEGIN { print (r <= g) ? "PASS" : "MISS" }')
  rows+=("| $1 | $(printf '%.2f' "$2") s | $(printf '%.2f' "$3") s | ${ratio}× | ≤ $4× | $result |")
}

echo "corpus: $corpus ($files files, $bytes bytes); $runs runs each, median" >&2
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# digest_of JSON: the snapshot digest of a `snap --json commit` document on stdin.
digest_of() { python3 -c 'import json,sys;print(json.load(sys.stdin)["digest"])'; }
# recorded STORE: the root tree and layers of `latest` in STORE.
recorded() { "$snap" --store "$1" --json show latest | python3 -c 'import json,sys;d=json.load(sys.stdin);print(json.dumps([d["root"],d["layers"]]))'; }
# check_fresh DIR STORE: issue 20's invariant. `latest` in STORE (committed incrementally)
# records what a commit of DIR into a fresh store records, and a commit without a parent (on a
# new ref of STORE, with all its caches) is the fresh store's snapshot, digest for digest.
checks=0
check_fresh() {
  local dir=$1 st=$2 fresh incremental
  rm -rf fresh-store; mkdir fresh-store; "$snap" --store fresh-store/.store init 2> /dev/null
  fresh=$("$snap" --store fresh-store/.store --json commit "$dir" | digest_of)
  if [ "$(recorded "$st")" != "$(recorded fresh-store/.store)" ]; then
    echo "FAIL: $dir: the incremental commit records other trees or layers than a fresh store" >&2; exit 1
  fi
  checks=$((checks + 1))
  incremental=$("$snap" --store "$st" --json commit --ref "fresh-check-$checks" "$dir" | digest_of)
  if [ "$fresh" != "$incremental" ]; then
    echo "FAIL: $dir: snapshot $incremental, a fresh store's $fresh" >&2; exit 1
  fi
  rm -rf fresh-store
}
# cost JSON: files read and packs written, from a `snap --json commit` document on stdin.
cost() { python3 -c 'import json,sys;d=json.load(sys.stdin);r=d["reuse"];print("%d files read, %d file packs written (%d blocks copied, %d compressed), %d reused" % (d["files_read"], r["packs_written"], r["blocks_copied"], r["blocks_compressed"], r["packs_reused"]))'; }

# Issue 20. Incremental commits: one file changed (a line appended: that file is read, the
# stat cache knows the others) beside a find walk, and 1 % of the files changed, spread over
# the tree, beside the first commit.
inc_notes=()
rm -rf .store && "$snap" commit corpus > /dev/null 2>&1
inc_file=$(find corpus -type f -name '*.html' | sort | sed -n "$(( files / 2 ))p")
k=0
pair ":" "find corpus -printf '%s %T@\\n'" 'k=$((k + 1)); echo "<!-- bench $k -->" >> "$inc_file"' '$snap commit corpus'
row "incremental: one file changed (vs \`find -printf '%s %T@'\`)" "$pb" "$pa" 2.0
k=$((k + 1)); echo "<!-- bench $k -->" >> "$inc_file"
$timer -f %M -o rss-inc.txt "$snap" --json commit corpus > inc.json
inc_notes+=("- one file changed in the corpus: $(cost < inc.json); peak RSS $(( $(tail -1 rss-inc.txt) / 1024 )) MiB")
check_fresh corpus .store
find corpus -type f | sort | awk 'NR % 100 == 0' > pct.txt
pair 'rm -rf first-store; mkdir first-store; $snap --store first-store/.store init 2> /dev/null' '$snap --store first-store/.store commit corpus' \
     'k=$((k + 1)); while read -r f; do echo "<!-- bench $k -->" >> "$f"; done < pct.txt' '$snap commit corpus'
row "incremental: 1 % of files changed, spread (vs the first commit)" "$pb" "$pa" 0.15
k=$((k + 1)); while read -r f; do echo "<!-- bench $k -->" >> "$f"; done < pct.txt
$timer -f %M -o rss-inc.txt "$snap" --json commit corpus > inc.json
inc_notes+=("- 1 % of the corpus changed ($(wc -l < pct.txt) files): $(cost < inc.json); peak RSS $(( $(tail -1 rss-inc.txt) / 1024 )) MiB")
check_fresh corpus .store
rm -rf first-store pct.txt inc.json rss-inc.txt
cp -a "$corpus"/. corpus/   # the corpus as it was, for the rows below

if [ $incremental = 1 ]; then
  # 300,000 small files in 300 directories, one changed: beside `git add -A && git commit` of
  # the same change in a git repository of the same tree.
  python3 - small 300 1000 <<'PY'
import os, random, sys
root, dirs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(20)
for d in range(dirs):
    p = os.path.join(root, f"d{d:03}")
    os.makedirs(p)
    for i in range(per):
        with open(os.path.join(p, f"f{i:04}.txt"), "w") as f:
            f.write(f"{d} {i} " + "x" * rnd.randint(10, 2000) + "\n")
PY
  find small -exec touch -h -d '1 hour ago' {} +
  g="git --git-dir=$work/small.git --work-tree=$work/small -c user.name=bench -c user.email=bench@example.com"
  $g init -q && $g add -A && $g commit -q -m base
  rm -rf small-store; mkdir small-store; "$snap" --store small-store/.store init 2> /dev/null
  "$snap" --store small-store/.store commit small > /dev/null 2>&1
  k=0
  pair 'k=$((k + 1)); echo "git $k" >> small/d150/f0500.txt' '$g add -A && $g commit -q -m "change $k"' \
       'k=$((k + 1)); echo "snap $k" >> small/d150/f0500.txt' '$snap --store small-store/.store commit small'
  row "incremental: 300,000 small files, one changed (vs \`git add -A && git commit\`)" "$pb" "$pa" 1.0
  k=$((k + 1)); echo "snap $k" >> small/d150/f0500.txt
  $timer -f %M -o rss-inc.txt "$snap" --store small-store/.store --json commit small > inc.json
  inc_notes+=("- 300,000 small files, one changed: $(cost < inc.json); peak RSS $(( $(tail -1 rss-inc.txt) / 1024 )) MiB")
  check_fresh small small-store/.store

  # 1,000,000 tiny files (1,000 × 1,000): a commit right after writing them (files changed in
  # its first clock tick would be too new to trust: store format §9.1), then the timed
  # recommit, beside find.
  python3 - tiny <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    p = os.path.join(root, f"{d:04}")
    os.makedirs(p)
    for i in range(1000):
        with open(os.path.join(p, f"{i:04}.txt"), "w") as f:
            f.write(f"tiny file {d} {i}\n")
PY
  pair ":" "find tiny -printf '%s %T@\\n'" \
       'find tiny -type f -exec touch {} +; rm -rf tiny-store; mkdir tiny-store; $snap --store tiny-store/.store init 2> /dev/null; $snap --store tiny-store/.store commit tiny > /dev/null 2>&1' \
       '$snap --store tiny-store/.store commit tiny'
  row "incremental: 1,000,000 tiny files, recommit right after writing (vs \`find\`)" "$pb" "$pa" 2.0
  find tiny -type f -exec touch {} +; rm -rf tiny-store; mkdir tiny-store; "$snap" --store tiny-store/.store init 2> /dev/null
  "$snap" --store tiny-store/.store commit tiny > /dev/null 2>&1
  $timer -f %M -o rss-inc.txt "$snap" --store tiny-store/.store --json commit tiny > inc.json
  inc_notes+=("- 1,000,000 tiny files, recommit right after writing: $(cost < inc.json); peak RSS $(( $(tail -1 rss-inc.txt) / 1024 )) MiB ($(( $(tail -1 rss-inc.txt) * 1024 / 1000000 )) B per file)")
  check_fresh tiny tiny-store/.store
  rm -rf small small.git small-store tiny tiny-store inc.json rss-inc.txt

  echo
  echo "| scenario | snap | baseline | ratio | goal | result |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${inc_notes[@]}"
  echo "- every row's snapshot equals a fresh store's commit of the same tree ($checks checks)"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

# 1. First commit into an empty store vs tar | zstd -3 -T2.
pair ":" "tar -cf - corpus | zstd -3 -T2 > /dev/null" "rm -rf .store" "$snap commit corpus"
base1=$pa snap1=$pb
row "first commit, empty store (vs \`tar -cf - . \| zstd -3 -T2\`)" "$snap1" "$base1" 1.5
row "first commit, empty store: issue 17's goal (the same two times)" "$snap1" "$base1" 1.0

# Facts about the snapshot, from one more first commit.
rm -rf .store
$timer -f %M -o rss.txt "$snap" --json commit corpus > commit.json
rss_kb=$(tail -1 rss.txt)
layers=$(python3 -c 'import json;print(json.load(open("commit.json"))["layers"])')
manifest=$(python3 -c 'import json;print(json.load(open("commit.json"))["manifest_bytes"])')
store_bytes=$(du -sb .store | cut -f1)

# 1b. The same first commit beside restic's first backup (same files, an empty repository),
# and the store's size beside restic's repository.
export RESTIC_PASSWORD=bench
pair 'rm -rf restic-repo; restic init -q -r restic-repo' 'restic backup -q -r restic-repo corpus' \
     'rm -rf .store' '$snap commit corpus'
base1r=$pa snap1r=$pb
row "first commit, empty store (vs \`restic backup\`)" "$snap1r" "$base1r" 0.4
restic_bytes=$(du -sb restic-repo | cut -f1)
rm -rf .store && "$snap" commit corpus > /dev/null 2>&1

# 2. Recommit, nothing changed vs a find walk.
pair ":" "find corpus -printf '%s %T@\\n'" ":" "$snap commit corpus"
base2=$pa snap2=$pb
row "recommit, nothing changed (vs \`find -printf '%s %T@'\`)" "$snap2" "$base2" 1.5
again=$("$snap" --json commit corpus | python3 -c 'import json,sys;print(json.load(sys.stdin)["update"])')

# 3. Restore into an empty directory vs cp -a: fresh names each time, and nothing deleted
# until the row is done. On ext4 without a journal (this VM's root), creating files right
# after deleting many makes the inode allocator skip every recently freed inode one by one
# (`recently_deleted`, for up to 5 minutes): one `cp -a` of the corpus then takes 2-15x as
# long, and whichever command follows a deletion pays it.
n=0
pair 'n=$((n + 1))' 'cp -a corpus cpcopy.$n' ':' '$snap restore latest out.$n'
base3=$pa snap3=$pb
mv "out.$n" out; rm -rf cpcopy.* out.*
if ! diff -r --no-dereference corpus out/corpus > /dev/null; then
  echo "FAIL: the restored tree differs from the corpus" >&2; exit 1
fi
row "restore into an empty directory (vs \`cp -a\`)" "$snap3" "$base3" 1.0

# 4. Export to an OCI archive vs umoci building a layer of the same tree (unpack an empty
# image once, put the tree in its rootfs, time `umoci repack`: each repack diffs the rootfs
# against the unpacked empty image and writes the whole tree as a new tar+gzip layer).
umoci init --layout umoci-layout && umoci new --image umoci-layout:t
umoci unpack --image umoci-layout:t bundle > /dev/null
cp -a corpus bundle/rootfs/corpus
pair ":" "umoci repack --image umoci-layout:t bundle" 'rm -f export.tar' '$snap export --oci latest -o export.tar'
base5=$pa snap5=$pb
export_bytes=$(stat -c %s export.tar)
rm -rf umoci-layout bundle
row "export to an OCI tar (vs \`umoci repack\` building a layer)" "$snap5" "$base5" 0.5

# 5. Push to and pull from a local registry (Debian's docker-registry), beside skopeo copying
# the same export in and out. Every timed run gets a fresh, empty registry, so nothing is
# skipped because it is already there (and skopeo's blob-info cache cannot mount blobs).
reg_pid=""
fresh_registry() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
  rm -rf registry-data
  reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s", secret: bench}\n' \
    "$work/registry-data" "$reg_port" > registry.yml
  docker-registry serve registry.yml > registry.log 2>&1 &
  reg_pid=$!
  until curl -sf "http://127.0.0.1:$reg_port/v2/" > /dev/null; do sleep 0.1; done
  reg="127.0.0.1:$reg_port"
}
if command -v docker-registry > /dev/null && command -v skopeo > /dev/null; then
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' > policy.json
  sk="skopeo --policy $work/policy.json"
  pair 'fresh_registry' '$sk copy -q --dest-tls-verify=false oci-archive:export.tar:latest docker://$reg/bench/skopeo:latest' \
       'fresh_registry' '$snap push latest $reg/bench/snap:latest'
  base6=$pa snap6=$pb
  row "push to a local registry (vs \`skopeo copy\` of the export)" "$snap6" "$base6" 0.3
  # Requests per new blob (issue 17: at most 2), and per blob already there (a second push).
  push_requests=$("$snap" --json push latest "$reg/bench/snap2:latest" | python3 -c 'import json,sys;d=json.load(sys.stdin);print("%s for %s new blobs" % (d["requests"], d["uploaded"]))')
  push_again=$("$snap" --json push latest "$reg/bench/snap2:latest" | python3 -c 'import json,sys;d=json.load(sys.stdin);print("%s for %s blobs already there" % (d["requests"], d["skipped"]))')
  # Pull what was just pushed: into a fresh store, and skopeo into an archive.
  $sk copy -q --dest-tls-verify=false oci-archive:export.tar:latest "docker://$reg/bench/skopeo:latest"
  pair 'rm -f pulled.tar' '$sk copy -q --src-tls-verify=false docker://$reg/bench/skopeo:latest oci-archive:pulled.tar:latest' \
       'rm -rf pullstore; mkdir pullstore; $snap --store pullstore/.store init 2> /dev/null' '$snap --store pullstore/.store pull $reg/bench/snap2:latest'
  base7=$pa snap7=$pb
  row "pull from a local registry (vs \`skopeo copy\` to an archive)" "$snap7" "$base7" 0.5
  rm -rf pullstore; mkdir pullstore; "$snap" --store pullstore/.store init 2> /dev/null
  "$snap" --store pullstore/.store --json pull "$reg/bench/snap2:latest" > pull.json
  pull_requests=$(python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print("%s for %s blobs" % (d["requests"], d["downloaded"]))' pull.json)
  pull_bytes=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["downloaded_bytes"])' pull.json)
  if ! "$snap" --store pullstore/.store restore latest pulled-tree > /dev/null 2>&1 ||
     ! diff -r --no-dereference corpus pulled-tree/corpus > /dev/null; then
    echo "FAIL: the pulled snapshot does not restore to the corpus" >&2; exit 1
  fi
  rm -rf pulled-tree
  # Partial restore from the registry (issue 17): the directory holding closest to 1 % of the
  # corpus's bytes; goal: at most 5 % of the snapshot's bytes transferred.
  part_dir=$(python3 - corpus <<'PY'
import os, sys
sizes = {}
for d, _, fs in os.walk(sys.argv[1]):
    n = sum(os.lstat(os.path.join(d, f)).st_size for f in fs)
    p = d
    while True:
        sizes[p] = sizes.get(p, 0) + n
        if p == sys.argv[1]: break
        p = os.path.dirname(p)
total = sizes[sys.argv[1]]
print(min(sizes, key=lambda p: abs(sizes[p] - total / 100)))
PY
)
  rm -rf part-out
  part=$("$snap" --json restore "$reg/bench/snap2:latest" part-out --path "$part_dir" | python3 -c 'import json,sys;d=json.load(sys.stdin);print("%d %d %d %d %d" % (d["fetched_bytes"], d["snapshot_bytes"], d["layers_fetched"], d["layers"], d["bytes"]))')
  read -r part_fetched part_all part_layers part_total part_bytes <<< "$part"
  if ! diff -r --no-dereference "$part_dir" "part-out/$part_dir" > /dev/null; then
    echo "FAIL: the partial restore differs from $part_dir" >&2; exit 1
  fi
  part_ratio=$(awk -v a="$part_fetched" -v b="$part_all" 'BEGIN { printf "%.3f", a / b }')
  rows+=("| partial restore from the registry, \`--path $part_dir\` ($(awk -v a="$part_bytes" -v b="$bytes" 'BEGIN { printf "%.2f", 100 * a / b }') % of the corpus) | $(( part_fetched / 1000 )) kB, $part_layers of $part_total layers | $(( part_all / 1000 )) kB (the snapshot) | ${part_ratio}× | ≤ 0.05× | $(awk -v r="$part_ratio" 'BEGIN { print (r <= 0.05) ? "PASS" : "MISS" }') |")
  rm -rf part-out
  # A pull killed halfway and run again (issue 17): what the rerun fetches against what was
  # missing (what a whole pull downloads less what the killed run left in .store/partial). The crash point
  # `download-mib:N` aborts the process, as SIGKILL would, after N MiB downloaded in all.
  rm -rf pullstore; mkdir pullstore; "$snap" --store pullstore/.store init 2> /dev/null
  SNAP_CRASH_AT="download-mib:$(( pull_bytes / 2 / 1048576 ))" \
    "$snap" --store pullstore/.store pull "$reg/bench/snap2:latest" > /dev/null 2>&1 || true
  kept=$(find pullstore/.store/partial -type f -printf '%s\n' 2> /dev/null | awk '{ s += $1 } END { print s + 0 }')
  pull_again=$("$snap" --store pullstore/.store --json pull "$reg/bench/snap2:latest" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["downloaded_bytes"])')
  missing=$(( pull_bytes - kept ))
  pull_resume_ratio=$(awk -v a="$pull_again" -v b="$missing" 'BEGIN { printf "%.3f", a / b }')
  rows+=("| pull killed at 50 % and run again: bytes fetched (vs the bytes missing: a whole pull's $(( pull_bytes / 1000 )) kB less the $(( kept / 1000 )) kB kept) | $(( pull_again / 1000 )) kB | $(( missing / 1000 )) kB | ${pull_resume_ratio}× | ≤ 1.1× | $(awk -v r="$pull_resume_ratio" 'BEGIN { print (r <= 1.1) ? "PASS" : "MISS" }') |")
  # Push killed at 50 % and run again (issue 17): one incompressible 256 MiB file goes up in
  # chunks; SIGKILL once the store's upload record says half of it is acknowledged, then the
  # rerun's bytes against what was missing. Goal: at most 1.1×.
  rm -rf resume; mkdir -p resume/data; head -c $((256 << 20)) /dev/urandom > resume/data/model.bin
  "$snap" --store resume/.store init > /dev/null 2>&1
  "$snap" --store resume/.store commit resume/data -m model > /dev/null 2>&1
  resume=$(python3 - "$snap" "$reg/bench/resume:latest" resume/.store <<'PY'
import glob, json, subprocess, sys, time
snap, target, store = sys.argv[1:4]
cmd = [snap, "--store", store, "--json", "push", "latest", target]
size = 256 << 20
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
acked = 0
while p.poll() is None:
    for f in glob.glob(store + "/partial/*.upload"):
        try:
            acked = max(acked, json.load(open(f))["offset"])
        except (OSError, ValueError, KeyError):
            pass
    if acked >= size // 2:
        p.kill()
        break
    time.sleep(0.001)
p.wait()
again = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
print(again["uploaded_bytes"], size - acked, again["resumed"])
PY
)
  read -r resume_sent resume_missing resume_resumed <<< "$resume"
  resume_ratio=$(awk -v a="$resume_sent" -v b="$resume_missing" 'BEGIN { printf "%.2f", a / b }')
  rows+=("| push killed at 50 % and run again (one 256 MiB blob, $resume_resumed resumed) | $(( resume_sent / 1000000 )) MB sent | $(( resume_missing / 1000000 )) MB missing | ${resume_ratio}× | ≤ 1.1× | $(awk -v r="$resume_ratio" 'BEGIN { print (r <= 1.1) ? "PASS" : "MISS" }') |")
  rm -rf resume
  rm -rf pullstore pulled.tar pull.json
  kill "$reg_pid" 2>/dev/null || true
else
  echo "skipping push/pull: docker-registry or skopeo missing (apt-get install -y docker-registry skopeo)" >&2
fi
rm -f export.tar

# 5. The next version, committed on top of the first.
if [ -n "$next" ] && [ -d "$next" ]; then
  rm -rf cpcopy* out*; mv corpus corpus.v1; cp -a "$next" corpus
  tar -cf - corpus > /dev/null
  base4=$(median_time ":" sh -c 'tar -cf - corpus | zstd -3 -T2 > /dev/null')
  ts=()
  for _ in $(seq "$runs"); do
    rm -rf .store
    mv corpus corpus.next && mv corpus.v1 corpus && "$snap" commit corpus > /dev/null 2>&1
    mv corpus corpus.v1 && mv corpus.next corpus
    sync
    t0=$(now); "$snap" commit corpus > /dev/null 2>&1
    ts+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')")
  done
  snap4=$(printf '%s\n' "${ts[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
  row "commit of the next version after the first (vs \`tar \| zstd\` of it)" "$snap4" "$base4" -
  # restic's second backup: the first version backed up, then the next one on top.
  ts=()
  for _ in $(seq "$runs"); do
    rm -rf restic-repo; restic init -q -r restic-repo
    mv corpus corpus.next && mv corpus.v1 corpus && restic backup -q -r restic-repo corpus > /dev/null
    mv corpus corpus.v1 && mv corpus.next corpus
    sync
    t0=$(now); restic backup -q -r restic-repo corpus > /dev/null 2>&1
    ts+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.4f", a - b }')")
  done
  base4r=$(printf '%s\n' "${ts[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
  row "commit of the next version after the first (vs restic's second backup)" "$snap4" "$base4r" 0.4
  rm -rf restic-repo
  store2=$(du -sb .store | cut -f1)
  # Pull of the next version into a store that holds the first (issue 17), against a whole
  # pull of the next version into an empty store: only the changed layers cross the wire.
  if command -v docker-registry > /dev/null; then
    fresh_registry
    "$snap" push 'latest~1' "$reg/bench/next:v1" > /dev/null 2>&1
    "$snap" push latest "$reg/bench/next:v2" > /dev/null 2>&1
    pair 'rm -rf nextstore; mkdir nextstore; $snap --store nextstore/.store init 2> /dev/null' \
         '$snap --store nextstore/.store pull $reg/bench/next:v2' \
         'rm -rf nextstore; mkdir nextstore; $snap --store nextstore/.store init 2> /dev/null; $snap --store nextstore/.store pull $reg/bench/next:v1 > /dev/null 2>&1' \
         '$snap --store nextstore/.store pull $reg/bench/next:v2'
    row "pull of the next version into a store holding the first (vs a whole pull of it)" "$pb" "$pa" 0.5
    rm -rf nextstore; mkdir nextstore; "$snap" --store nextstore/.store init 2> /dev/null
    "$snap" --store nextstore/.store pull "$reg/bench/next:v1" > /dev/null 2>&1
    next_pull=$("$snap" --store nextstore/.store --json pull "$reg/bench/next:v2" 2> /dev/null | python3 -c 'import json,sys;d=json.load(sys.stdin);print("%d of %d blobs, %d kB" % (d["downloaded"], d["blobs"], d["downloaded_bytes"] // 1000))')
    rm -rf nextstore; mkdir nextstore; "$snap" --store nextstore/.store init 2> /dev/null
    next_whole=$("$snap" --store nextstore/.store --json pull "$reg/bench/next:v2" 2> /dev/null | python3 -c 'import json,sys;d=json.load(sys.stdin);print("%d of %d blobs, %d kB" % (d["downloaded"], d["blobs"], d["downloaded_bytes"] // 1000))')
    rm -rf nextstore
    kill "$reg_pid" 2> /dev/null || true
  fi
fi

# 6. One big binary, and a 4 GiB file: time against zstd, and peak RSS.
if [ $big = 1 ]; then
  llvm=$(ls "$HOME"/.rustup/toolchains/*/lib/libLLVM.so.* 2>/dev/null | head -1)
  mkdir -p big
  if [ -n "$llvm" ]; then cp "$llvm" big/libLLVM.so; else head -c 200M /dev/urandom > big/libLLVM.so; fi
  cat big/libLLVM.so > /dev/null
  pair ":" "zstd -3 -T2 -c big/libLLVM.so > /dev/null" 'rm -rf bigstore; mkdir bigstore; $snap --store bigstore/.store init 2> /dev/null' '$snap --store bigstore/.store commit big'
  base8=$pa snap8=$pb
  row "commit of a $(( $(stat -c %s big/libLLVM.so) / 1000000 )) MB binary (vs \`zstd -3 -T2\`)" "$snap8" "$base8" 1.3
  rm -rf bigstore; mkdir bigstore; "$snap" --store bigstore/.store init 2> /dev/null
  $timer -f %M -o rss-big.txt "$snap" --store bigstore/.store commit big > /dev/null 2>&1
  rss_big=$(tail -1 rss-big.txt)
  rm -rf big bigstore; mkdir huge
  # 4 GiB that compresses like real data: a 64 MiB random block repeated with variations.
  python3 - huge/4g.bin <<'PY'
import os, sys
block = os.urandom(64 << 20)
with open(sys.argv[1], "wb") as f:
    for i in range(64):
        f.write(i.to_bytes(8, "little") + block[8:])
PY
  rm -rf hugestore; mkdir hugestore; "$snap" --store hugestore/.store init 2> /dev/null
  $timer -f '%e %M' -o rss-huge.txt "$snap" --store hugestore/.store commit huge > /dev/null 2>&1
  read -r huge_s rss_huge < <(tail -1 rss-huge.txt)
  rm -rf huge hugestore
fi

# 7. Scaling: time and memory per file from 1k to 1M tiny files.
scaling_rows=()
if [ $scaling = 1 ]; then
  for n in 1000 10000 100000 1000000; do
    rm -rf tiny tinystore; mkdir tiny tinystore
    python3 - tiny "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"{i // 1000:04}")
    if i % 1000 == 0: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{i:07}.txt"), "w") as f: f.write(f"tiny file {i}\n")
PY
    sync
    "$snap" --store tinystore/.store init 2> /dev/null
    $timer -f '%e %M' -o tiny.txt "$snap" --store tinystore/.store commit tiny > /dev/null 2>&1
    read -r t kb < <(tail -1 tiny.txt)
    scaling_rows+=("| $n | $(printf '%.2f' "$t") s | $(awk -v t="$t" -v n="$n" 'BEGIN { printf "%.1f", 1e6 * t / n }') µs | $(( kb / 1024 )) MiB | $(awk -v k="$kb" -v n="$n" 'BEGIN { printf "%.0f", 1024 * k / n }') B |")
  done
  rm -rf tiny tinystore tiny.txt
fi

echo
echo "| scenario | snap | baseline | ratio | goal | result |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "- corpus: $files files, $(( bytes / 1000000 )) MB ($corpus)"
echo "- snapshot: $layers layers, manifest $manifest bytes"
echo "- store after the first commit: $(( store_bytes / 1000000 )) MB ($(awk -v a="$store_bytes" -v b="$bytes" 'BEGIN { printf "%.1f", 100 * a / b }') % of the corpus)"
[ -n "${store2:-}" ] && echo "- store after both versions: $(( store2 / 1000000 )) MB"
echo "- peak RSS of the first commit: $(( rss_kb / 1024 )) MiB"
echo "- OCI export: $(( export_bytes / 1000000 )) MB"
[ -n "${next_pull:-}" ] && echo "- pull of the next version: $next_pull into a store holding the first; a whole pull of it: $next_whole"
[ -n "${push_requests:-}" ] && echo "- HTTP requests: push into an empty repository $push_requests, again $push_again; pull into an empty store $pull_requests; pulled tree identical under diff -r"
echo "- commit again: $again; restore identical under diff -r: yes"
printf '%s\n' "${inc_notes[@]}"
echo "- incremental commits equal a fresh store's ($checks checks); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- restic repository after the first backup: $(( restic_bytes / 1000000 )) MB; snap's store: $(( store_bytes / 1000000 )) MB ($(awk -v a="$store_bytes" -v b="$restic_bytes" 'BEGIN { printf "%.2f", a / b }')× restic's; goal ≤ 1.00×)"
if [ $big = 1 ]; then
  echo "- peak RSS committing the binary: $(( rss_big / 1024 )) MiB (goal ≤ 64 MiB); the 4 GiB file: $(( rss_huge / 1024 )) MiB in ${huge_s} s (goal ≤ 64 MiB)"
fi
if [ ${#scaling_rows[@]} -gt 0 ]; then
  echo
  echo "| tiny files | commit | per file | peak RSS | RSS per file |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${scaling_rows[@]}"
fi
