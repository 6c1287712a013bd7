#!/bin/sh
# The native relay under AddressSanitizer and UBSan: builds lane.node with them into lane/build/asan
# (a copy of src/ and dist/, so the usual build is left alone), then runs the relay's tests and
# fuzz.mjs (random records, chunkings, hand-overs and corruptions; $1 iterations, default 2000)
# with libasan preloaded into node. Any report stops the run; reports go to stderr.
# Set NODEDIR to node's headers if node-gyp should not fetch them (here: NODEDIR=/usr).
set -eu
lane=$(cd "$(dirname "$0")/../.." && pwd)
out="$lane/build/asan"
"$lane/test/asan/build.sh" asan address,undefined
libasan=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$lane/.."
npx vitest run --config lane/test/asan/vitest.config.mjs
node lane/test/asan/fuzz.mjs "file://$out/dist/index.js" "${1:-2000}"
