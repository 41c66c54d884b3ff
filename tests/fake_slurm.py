"""A stand-in for SLURM's ``sbatch``, ``srun`` and ``sacct`` on one machine, for tests of what
submitit submits: ``python fake_slurm.py TOOL ARGS...`` (the test puts small ``sbatch``,
``srun`` and ``sacct`` scripts that call it on PATH).

- ``sbatch SCRIPT``: runs SCRIPT with bash in the background, with the job's variables
  (SLURM_JOB_ID, SLURM_NTASKS from ``#SBATCH --ntasks-per-node`` x ``--nodes``, one node:
  localhost), and says ``Submitted batch job ID`` as sbatch does. One job, no arrays.
- ``srun [--output F] [--error F] [flags] COMMAND...``: starts COMMAND once per task with
  SLURM_PROCID, SLURM_LOCALID and SLURM_NODEID, its output in F (``%j`` and ``%t`` filled in),
  and exits with the largest exit code. With FAKE_SLURM_AUDIT set, every task gets that
  folder first on PYTHONPATH (a ``sitecustomize`` there may watch it) and
  FAKE_SLURM_TASK=its rank.
- ``sacct``: knows no job (submitit then waits for the jobs' result files).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

JOB_ID = os.environ.get("FAKE_SLURM_JOB_ID", "4242")


def sbatch(script: Path) -> None:
    text = script.read_text()

    def flag(name: str) -> int:
        found = re.search(rf"^#SBATCH --{name}=(\d+)", text, re.M)
        return int(found.group(1)) if found else 1

    # A copy: submitit moves the script once sbatch has answered.
    copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"fake-sbatch-{os.getpid()}.sh"
    shutil.copyfile(script, copy)
    env = dict(
        os.environ,
        SLURM_JOB_ID=JOB_ID,
        SLURM_NTASKS=str(flag("ntasks-per-node") * flag("nodes")),
        SLURM_JOB_NUM_NODES="1",
        SLURM_JOB_NODELIST="localhost",
    )
    subprocess.Popen(
        ["bash", str(copy)],
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"Submitted batch job {JOB_ID}")


def srun(args: list[str]) -> int:
    files = {"--output": "", "--error": ""}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in files:
            files[flag] = args.pop(0)
    audit = os.environ.get("FAKE_SLURM_AUDIT")
    procs = []
    for task in range(int(os.environ["SLURM_NTASKS"])):
        env = dict(os.environ, SLURM_PROCID=str(task), SLURM_LOCALID=str(task), SLURM_NODEID="0")
        if audit:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [audit, env.get("PYTHONPATH")]))
            env["FAKE_SLURM_TASK"] = str(task)
        out = {}
        for flag, pattern in files.items():
            path = Path(pattern.replace("%j", JOB_ID).replace("%t", str(task)) or os.devnull)
            path.parent.mkdir(parents=True, exist_ok=True)
            out[flag] = open(path, "a")  # noqa: SIM115 (the task's, closed at exit)
        procs.append(subprocess.Popen(args, env=env, stdout=out["--output"], stderr=out["--error"]))
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    if tool == "sbatch":
        sbatch(Path(rest[-1]))
    elif tool == "srun":
        sys.exit(srun(rest))
