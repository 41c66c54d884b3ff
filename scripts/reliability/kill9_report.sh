#!/usr/bin/env bash
# kill -9 after a checkpoint, resume=, then count each job's episodes in the report's reader
# against summary.json (docs/reliability.md, rows 3 and 8). The jobs are trained by the code
# on PYTHONPATH (or the installed one); the counts are read by the old tree's reader and by
# the installed one's.
# usage: bash scripts/reliability/kill9_report.sh SCRATCH_DIR OLD_TREE JOBS
set -u
D=$1; OLD=$2; rm -rf "$D"; mkdir -p "$D"
for i in $(seq 1 "$3"); do
  J=$D/job$i
  python -m sharedppo total_steps=60000 checkpoint.every_steps=8192 seed=$i hydra.run.dir="$J" \
    > /dev/null 2>&1 &
  P=$!
  while [ ! -f "$J/checkpoints/last.pt" ]; do sleep 0.05; done
  sleep 0.$((RANDOM % 9 + 1)); kill -9 $P; wait $P 2>/dev/null
  python -m sharedppo resume="$J" > "$J.resume.out" 2>&1 || echo "job$i: resume failed"
done
count='import sys, json; from pathlib import Path; from sharedppo.report.sweep import read_returns
for j in sorted(Path(sys.argv[1]).glob("job*/")):
    e = json.loads((j / "summary.json").read_text())["episodes"]; n = len(read_returns(j)[1])
    print(f"  {j.name}: summary {e}, report {n}, off by {n - e}")'
echo "the old reader:"; PYTHONPATH=$OLD python -c "$count" "$D"
echo "the installed reader:"; env -u PYTHONPATH python -c "$count" "$D"
