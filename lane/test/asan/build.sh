#!/bin/sh
# build.sh NAME SANITIZERS [CFLAGS...]: lane.node built with -fsanitize=SANITIZERS into
# lane/build/NAME, a copy of src/ and dist/ so the usual build is left alone (run.sh: asan,
# tsan.sh: tsan). Set NODEDIR to node's headers if node-gyp should not fetch them (here: NODEDIR=/usr).
set -eu
name=$1 sanitizers=$2
shift 2
lane=$(cd "$(dirname "$0")/../.." && pwd)
out="$lane/build/$name"
rm -rf "$out" && mkdir -p "$out"
cp -r "$lane/src" "$lane/dist" "$lane/binding.gyp" "$lane/package.json" "$out/"
(cd "$out" && CFLAGS="-fsanitize=$sanitizers -fno-omit-frame-pointer -g -O1 $*" \
  LDFLAGS="-fsanitize=$sanitizers" "$lane/../node_modules/.bin/node-gyp" rebuild ${NODEDIR:+--nodedir="$NODEDIR"} >/dev/null)
