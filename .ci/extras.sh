#!/usr/bin/env bash
# Each extra on its own: a fresh venv holding torch and sharedppo[EXTRA] only, running what the
# README says that extra enables, on a tiny budget. A bare install (no extra) must still train
# the default and answer every optional feature with one line naming its extra, exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Venvs and runs stay in the checkout (ignored by git), as .venv does: deleting eight torch
# installs can take minutes on a disk mounted with discard. Each run starts them afresh.
work=$root/.ci/work
rm -rf "$work/runs"
mkdir -p "$work"
tiny=(total_steps=2048 checkpoint.every_steps=null)

fresh_venv() { # NAME [EXTRA]: a new venv in $work/NAME with torch, then sharedppo[EXTRA]
    python3 -m venv --clear "$work/$1"
    "$work/$1/bin/pip" install -q torch==2.13.0
    "$work/$1/bin/pip" install -q -e "$root${2:+[$2]}"
}

expect_missing() { # EXTRA CMD...: exit 2, one line on stderr naming pip install "sharedppo[EXTRA]"
    local extra=$1 rc=0 err
    shift
    err=$("$@" 2>&1 >/dev/null) || rc=$?
    if [[ $rc != 2 || $(wc -l <<<"$err") != 1 || $err != *"pip install \"sharedppo[$extra]\"" ]]; then
        echo "FAIL: $* (exit $rc):"
        echo "$err"
        return 1
    fi
    echo "  ok: $* -> $err"
}

no_noise() { # LOG: a run's output holds no traceback or error line
    if grep -inE "traceback|error|moviepy.editor" "$1"; then
        echo "FAIL: unexpected lines in $1"
        return 1
    fi
}

bare() {
    sharedppo "${tiny[@]}" hydra.run.dir="$work/runs/bare"
    mkdir -p "$work/runs/empty_sweep/0/.hydra"
    expect_missing box2d sharedppo env=lunarlander
    expect_missing box2d sharedppo env=lunarlander_continuous
    expect_missing mujoco sharedppo env=halfcheetah
    expect_missing mujoco sharedppo experiment=hopper
    expect_missing atari sharedppo env=atari
    expect_missing envpool sharedppo env.backend=envpool
    expect_missing video sharedppo eval.video=true
    expect_missing sweep sharedppo -m hydra/launcher=joblib seed=0,1
    expect_missing sweep sharedppo -m hydra/launcher=submitit_local seed=0,1
    expect_missing sweep sharedppo -m hydra/launcher=slurm seed=0,1
    expect_missing sweep sharedppo-report "$work/runs/empty_sweep"
    expect_missing sweep sharedppo-tune --search cartpole --trials 1
    expect_missing export sharedppo-export "$work/runs/bare" --out "$work/runs/bare.onnx"
}

export_() {
    sharedppo "${tiny[@]}" hydra.run.dir="$work/runs/export"
    sharedppo-export "$work/runs/export" --format onnx --out "$work/runs/export.onnx"
    python -c "import onnxruntime as ort; ort.InferenceSession('$work/runs/export.onnx')"
}

box2d() {
    sharedppo env=lunarlander "${tiny[@]}" hydra.run.dir="$work/runs/box2d"
}

mujoco() {
    sharedppo env=halfcheetah "${tiny[@]}" hydra.run.dir="$work/runs/mujoco"
}

atari() {
    sharedppo env=atari total_steps=512 env.num_envs=2 ppo.num_steps=64 \
        checkpoint.every_steps=null hydra.run.dir="$work/runs/atari"
}

envpool() { # the README's command, and Atari through EnvPool alone (no ale-py installed)
    sharedppo env.backend=envpool "${tiny[@]}" hydra.run.dir="$work/runs/envpool"
    sharedppo env=atari env.backend=envpool total_steps=256 env.num_envs=2 ppo.num_steps=64 \
        checkpoint.every_steps=null hydra.run.dir="$work/runs/envpool_atari"
}

video() {
    local run=$work/runs/video
    sharedppo total_steps=1024 eval.video=true hydra.run.dir="$run" 2>&1 | tee "$work/video.log"
    sharedppo-eval "$run" --episodes 1 --video 2>&1 | tee -a "$work/video.log"
    no_noise "$work/video.log"
    ls "$run"/videos/*.mp4
    python - "$run" <<'EOF'
import sys
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={IMAGES: 0})
acc.Reload()
image = acc.Images("eval/video")[-1]
assert image.encoded_image_string.startswith(b"GIF8"), "eval/video is not a GIF"
print(f"  eval/video: {image.width}x{image.height} GIF, {len(image.encoded_image_string)} bytes")
EOF
}

sweep() {
    local dir=$work/runs/sweep
    sharedppo -m hydra/launcher=joblib hydra.launcher.n_jobs=2 seed=0,1 "${tiny[@]}" \
        hydra.sweep.dir="$dir"
    sharedppo-report "$dir" --threshold 475
    sharedppo -m hydra/launcher=submitit_local hydra.launcher.timeout_min=5 seed=0,1 \
        "${tiny[@]}" hydra.sweep.dir="$work/runs/submitit"
    ls "$work"/runs/submitit/seed={0,1}/summary.json
    test -s "$dir/report_curves.png"
    sharedppo-tune --search cartpole --trials 2 --out "$work/runs/tune" "${tiny[@]}"
}

# pip's notes about this machine's local index folders are not CI's business.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

for extra in bare box2d mujoco atari envpool video sweep export; do
    echo "=== $(date +%T) extra: $extra"
    start=$SECONDS
    [[ $extra == bare ]] && with="" || with=$extra
    venv=$extra
    if [[ $extra == envpool ]]; then
        # The bare venv (its checks done) plus the extra is exactly torch + sharedppo[envpool],
        # without installing torch a second time.
        venv=bare
        quiet "$work/bare/bin/pip" install -q -e "$root[envpool]"
    else
        quiet fresh_venv "$extra" "$with"
    fi
    built=$((SECONDS - start))
    # In a subshell, so that each extra sees its own venv alone.
    (
        . "$work/$venv/bin/activate"
        cd "$work"
        if [[ $extra == export ]]; then export_; else "$extra"; fi  # `export` is a builtin
    )
    echo "=== $(date +%T) extra: $extra ok (install $built s, checks $((SECONDS - start - built)) s)"
done
