#!/bin/sh
# The native relay under ThreadSanitizer (the relay threads, and a download's lane-hash thread):
# builds lane.node with -fsanitize=thread into lane/build/tsan (a copy of src/ and dist/, so the
# usual build is left alone) and runs the relay's tests with libtsan preloaded into node. Node
# itself is not instrumented: ignore_noninstrumented_modules keeps its own threads out of the
# reports. Set HASH_RING (bytes, e.g. 100003) to build with a small hasher ring, so that downloads
# wrap it and wait for the hasher often. Any report fails the run.
# Set NODEDIR to node's headers if node-gyp should not fetch them (here: NODEDIR=/usr).
set -eu
lane=$(cd "$(dirname "$0")/../.." && pwd)
"$lane/test/asan/build.sh" tsan thread ${HASH_RING:+-DHASH_RING=$HASH_RING}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$lane/.."
LD_PRELOAD=$(gcc -print-file-name=libtsan.so) LANE_SANITIZER=tsan \
  TSAN_OPTIONS="halt_on_error=0 ignore_noninstrumented_modules=1 report_signal_unsafe=0 log_path=$log.tsan" \
  node node_modules/vitest/vitest.mjs run --config lane/test/asan/vitest.config.mjs
if cat "$log".tsan.* >/dev/null 2>&1; then
  cat "$log".tsan.* >&2
  rm -f "$log".tsan.*
  echo "ThreadSanitizer reported the above" >&2
  exit 1
fi
