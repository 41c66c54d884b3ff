#!/usr/bin/env bash
# kill -9 while last.pt is being written (a 2048-wide network: ~100 MB checkpoints), then
# resume= (docs/reliability.md, row 11).
# usage: [PYTHONPATH=OLD_TREE] bash scripts/reliability/kill9_save.sh SCRATCH_DIR
set -u
J=$1/job; rm -rf "$1"; mkdir -p "$1"
python -m sharedppo total_steps=100000 network.width=2048 network.depth=3 ppo.fused=false \
  checkpoint.every_steps=256 checkpoint.keep=0 hydra.run.dir="$J" > /dev/null 2>&1 &
P=$!
until [ -f "$J/checkpoints/last.pt" ]; do sleep 0.01; done
until ls "$J"/checkpoints/.last.pt.*.tmp > /dev/null 2>&1; do sleep 0.01; done
kill -9 $P; wait $P 2>/dev/null
echo "after kill -9: $(ls -a "$J/checkpoints" | grep -c tmp) tmp file(s)"
timeout 120 python -m sharedppo resume="$J" total_steps=1024 checkpoint.every_steps=null \
  > "$1/resume.out" 2>&1
echo "resume: exit $?; after it: $(ls -a "$J/checkpoints" | grep -c tmp) tmp file(s)"
rm -rf "$1"
