#!/bin/bash
# Every benchmark once, tiny: proves each still runs end to end (not a measurement).
# `make bench-smoke` runs it (`bench/smoke.sh NAME...` runs only those); the real figures come from the commands in docs/benchmarks.md.
set -u
PY=${PY:-.venv/bin/python}
failed=()
only=" $* "  # names to run (default: all), e.g. `bench/smoke.sh truth vision`
run() {
  local name=$1; shift
  if [ "$only" != "  " ] && [[ "$only" != *" $name "* ]]; then return; fi
  printf '%-28s' "$name"
  local start=$SECONDS
  if "$@" > "/tmp/edgecount-bench-smoke-$name.log" 2>&1; then
    echo "ok    $((SECONDS - start)) s"
  else
    echo "FAILED (log: /tmp/edgecount-bench-smoke-$name.log)"
    failed+=("$name")
  fi
}
run llrp_encode   "$PY" bench/llrp_encode.py --tags 2000 --slow-tags 200
run rfid_decode   "$PY" bench/rfid_throughput.py --parts decode --reports 200
run rfid_readers  "$PY" bench/rfid_throughput.py --parts readers --readers 2 --duration 3
run rfid_memory   "$PY" bench/rfid_throughput.py --parts memory --unique 20000
run reconciler    "$PY" bench/reconciler.py --messages 500 --rows 2000
run outbox_batch  "$PY" bench/outbox_batch.py --counts 50 --repeat 1
run sgln          "$PY" bench/sgln.py --tags 500
run truth         "$PY" bench/truth.py --scan-seconds 2 --bays 2
run vision        "$PY" bench/vision.py --images 10 --foreign-images 3 --latency-images 4 --rounds 1
run finetune_curve "$PY" bench/finetune_curve.py --renderers wire --sizes 2 --epochs 1 --val 1 --held-out 2 --own 2 --work /tmp/edgecount-bench-smoke-curve
run twin_vision   "$PY" bench/twin_vision.py --frames 1
run console       "$PY" bench/console.py --locations 200 --discrepancies 50 --rounds 1
run multisite     "$PY" bench/multisite.py --sites 3 --locations 100
run centre_idle   "$PY" bench/centre_idle.py --sites 3 --seconds 1
run centre_ingest "$PY" bench/centre_ingest.py --sites 3 --locations 20 --repeat 1
run soak          "$PY" bench/soak.py --minutes 0.5 --scan-every 10 --broker-every 20 --reader-every 15
for target in llrp_codec llrp_driver llrp_sim mqtt serial; do
  run "fuzz_$target" "$PY" -m bench.fuzz.run "$target" --seconds 5
done
if [ ${#failed[@]} -gt 0 ]; then echo "failed: ${failed[*]}"; exit 1; fi
echo "every benchmark ran"
