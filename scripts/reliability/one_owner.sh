#!/usr/bin/env bash
# One owner per job folder, as a user meets it (docs/reliability.md, rows 1-2).
#  1. a job interrupted with Ctrl-C, then a fresh run given the same folder (hydra.run.dir);
#  2. two runs started 0.5 s apart into one folder.
# usage: [PYTHONPATH=OLD_TREE] bash scripts/reliability/one_owner.sh SCRATCH_DIR
set -u
D=$1; J=$D/job; K=$D/both; rm -rf "$D"; mkdir -p "$D"
step() { python -c "from sharedppo.run.checkpoint import load; from pathlib import Path
print(load(Path('$1'))['progress']['global_step'])"; }

python -m sharedppo total_steps=400000 checkpoint.every_steps=4096 hydra.run.dir="$J" 2>/dev/null &
P=$!
while [ ! -f "$J/checkpoints/last.pt" ]; do sleep 0.1; done; sleep 1; kill -INT $P; wait $P
echo "1. interrupted: exit $?, last.pt at step $(step "$J/checkpoints/last.pt")"
python -m sharedppo total_steps=4096 hydra.run.dir="$J" > "$D/fresh.out" 2>&1
echo "   fresh run into it: exit $?: $(tail -1 "$D/fresh.out")"
echo "   last.pt now at step $(step "$J/checkpoints/last.pt")"

python -m sharedppo total_steps=30000 seed=1 hydra.run.dir="$K" > "$D/a.out" 2>&1 & A=$!
sleep 0.5
python -m sharedppo total_steps=30000 seed=2 hydra.run.dir="$K" > "$D/b.out" 2>&1 & B=$!
wait $A; echo "2. first run: exit $?"; wait $B; echo "   second run: exit $?: $(tail -1 "$D/b.out")"
echo "   .hydra/overrides.yaml says: $(grep seed "$K/.hydra/overrides.yaml")"
