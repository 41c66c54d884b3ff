#!/usr/bin/env bash
# Two Ctrl-C 20 ms apart before the first checkpoint (docs/reliability.md, row 6): long
# rollouts (ppo.num_steps=4096) so that both arrive within the first update.
# usage: [PYTHONPATH=OLD_TREE] bash scripts/reliability/two_ctrl_c.sh SCRATCH_DIR
set -u
J=$1/job; rm -rf "$1"; mkdir -p "$1"
python -m sharedppo total_steps=4000000 ppo.num_steps=4096 checkpoint.every_steps=null \
  hydra.run.dir="$J" > "$1/out" 2>&1 &
P=$!
while ! ls "$J"/events.out.* > /dev/null 2>&1; do sleep 0.05; done; sleep 0.5
kill -INT $P; sleep 0.02; kill -INT $P; wait $P
echo "exit $?, $(grep -c Traceback "$1/out") tracebacks: $(tail -1 "$1/out")"
python -c "import json; s = json.load(open('$J/summary.json'))
print({k: s.get(k) for k in ('status', 'global_step', 'resume', 'checkpoint')})"
echo "checkpoints: $(ls "$J/checkpoints" | tr '\n' ' ')"
