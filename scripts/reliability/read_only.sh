#!/usr/bin/env bash
# A read-only folder (docs/reliability.md, row 10): a job trained on a tmpfs, which is then
# remounted read-only; every command is run against it. Needs root (mount).
# usage: [PYTHONPATH=OLD_TREE] bash scripts/reliability/read_only.sh SCRATCH_DIR
set -u
D=$1; umount "$D" 2>/dev/null; rm -rf "$D"; mkdir -p "$D"; mount -t tmpfs -o size=20m tmpfs "$D"
python -m sharedppo total_steps=2048 hydra.run.dir="$D/job" > /dev/null 2>&1
mount -o remount,ro "$D"
run() { name=$1; shift; "$@" > "$D.$name.out" 2>&1; code=$?
  echo "$name: exit $code, $(grep -c Traceback "$D.$name.out") tracebacks:" \
    "$(tail -1 "$D.$name.out" | cut -c1-150)"; }
run train python -m sharedppo total_steps=2048 hydra.run.dir="$D/new"
run resume python -m sharedppo resume="$D/job" total_steps=4096
run eval python -m sharedppo.run.evaluate "$D/job" --episodes 2
run report python -m sharedppo.report "$D/job"
run export python -m sharedppo.run.export "$D/job" --out "$D/policy.onnx"
run tune python -m sharedppo.tune --search cartpole --trials 1 --out "$D/tune"
umount "$D"
