#!/usr/bin/env bash
# A full disk (docs/reliability.md, row 9): each job on a tmpfs of a given size, which fills
# during training at a different write (last.pt, best.pt, a snapshot, the events). Needs root
# (mount). usage: [PYTHONPATH=OLD_TREE] bash scripts/reliability/full_disk.sh SCRATCH_DIR
set -u
D=$1; mkdir -p "$D"
for size in 100k 120k 170k 230k 300k; do
  M=$D/$size; umount "$M" 2>/dev/null; rm -rf "$M"; mkdir -p "$M"
  mount -t tmpfs -o size=$size tmpfs "$M"
  python -m sharedppo total_steps=100000 checkpoint.every_steps=2048 hydra.run.dir="$M/job" \
    > "$M.out" 2>&1
  echo "$size: exit $?, $(grep -c Traceback "$M.out") tracebacks;" \
    "$(grep -E '^[A-Za-z]*Error|error:' "$M.out" | tail -1 | cut -c1-180)"
  echo "      checkpoints: $(ls -a "$M/job/checkpoints" | tr '\n' ' ')"
  umount "$M"
done
