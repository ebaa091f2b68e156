#!/usr/bin/env bash
# Proof on a real scheduler: the tiny jetimage workflow through `snakemake --executor slurm` on a
# one-node SLURM cluster started on localhost.
#
#   sudo tests/slurm/run.sh [PYTHON]        # PYTHON: also $JETIMAGE_PYTHON; default .venv/bin/python
#
# Needs root and Debian/Ubuntu (it installs slurm-wlm and munge with apt-get when missing). It
# starts munged (unless one already answers), slurmctld and slurmd with a one-node slurm.conf of
# its own, runs the workflow with the repository's slurm profile plus
# workflow/profiles/slurm-localtest, checks the outputs and that every rule instance ran as a
# SLURM job, then cancels leftover jobs and stops every daemon it started.
# The slurm.conf and gres.conf go to /etc/slurm for the duration of the test (the plugin's job
# step drops $SLURM_CONF before calling srun, so srun reads the default path); files that were
# there before are put back on exit.
# Set KEEP=1 to keep the scratch directory; it is always kept when the test fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${1:-${JETIMAGE_PYTHON:-$REPO/.venv/bin/python}}"
STUDY=slurmtest
N_EVENTS=300          # per sample
N_SHARDS=2            # per sample
SNAKEMAKE_TIMEOUT=720 # seconds
T0=$SECONDS

say() { printf '[slurm-test %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[slurm-test] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (installs packages, starts munged/slurmctld/slurmd)"
[[ -x $PY ]] || die "no Python at $PY (run 'make setup' first, or pass the interpreter as \$1 / \$JETIMAGE_PYTHON)"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"   # absolute, not resolved: keeps the venv

# --- packages -------------------------------------------------------------------------------
missing=()
for cmd in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd##*:}")
done
if ((${#missing[@]})); then
    say "installing slurm-wlm and munge from the Debian archive (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null || die "apt-get update failed"
    apt-get install -y -qq slurm-wlm munge </dev/null >/dev/null || die "apt-get install slurm-wlm munge failed"
fi
say "$(slurmctld -V), $(munged --version 2>&1 | head -1)"

if ! "$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null; then
    say "installing the cluster extra into $(dirname "$(dirname "$PY")")"
    "$PY" -m pip install --quiet -e "${REPO}[cluster]" </dev/null || die "pip install -e '.[cluster]' failed"
    "$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
        || die "snakemake-executor-plugin-slurm missing: add it to the 'cluster' extra of pyproject.toml"
fi

ETC=/etc/slurm
MARK="# written by jetimage tests/slurm/run.sh"
# A run killed with SIGKILL leaves its daemons and its slurm.conf behind: stop those daemons (by
# the pid files named in that slurm.conf), cancelling their jobs first.
if [[ -f $ETC/slurm.conf ]] && head -1 "$ETC/slurm.conf" | grep -qF "$MARK"; then
    export SLURM_CONF="$ETC/slurm.conf"
    old_scratch=$(awk -F= '$1 == "StateSaveLocation" {print $2}' "$ETC/slurm.conf"); old_scratch=${old_scratch%/state}
    if [[ $old_scratch == /tmp/jetimage-slurm.* ]]; then   # its snakemake, if still running
        for pid in $(pgrep -f -- "--directory $old_scratch/work " || true); do
            say "stopping the snakemake (pid $pid) of an earlier run"
            kill -TERM "$pid" 2>/dev/null || true
        done
        sleep 5
    fi
    mapfile -t old_jobs < <(squeue -h -o %i 2>/dev/null || true)
    ((${#old_jobs[@]} == 0)) || scancel --quiet "${old_jobs[@]}" 2>/dev/null || true
    for name in slurmd slurmctld munged; do
        case $name in
            slurmd) pid=$(cat "$old_scratch/slurmd.pid" 2>/dev/null || true) ;;
            slurmctld) pid=$(cat "$old_scratch/slurmctld.pid" 2>/dev/null || true) ;;
            munged) pid=$(sed -n 's/^# munged started by the test: pid //p' "$ETC/slurm.conf") ;;
        esac
        if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat /proc/"$pid"/comm 2>/dev/null) == "$name" ]]; then
            say "stopping $name (pid $pid) left by an earlier run"
            kill -TERM "$pid"
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
    done
    rm -f "$ETC/slurm.conf" "$ETC/gres.conf"
    for f in slurm.conf gres.conf; do   # what that run had moved aside
        [[ -e $old_scratch/etc-backup/$f ]] && mv "$old_scratch/etc-backup/$f" "$ETC/$f"
    done
fi

for d in slurmctld slurmd; do
    if pgrep -x "$d" >/dev/null; then
        die "a $d is already running (pid $(pgrep -x "$d" | tr '\n' ' ')); stop it first, this test starts its own"
    fi
done

# --- scratch directory and cleanup ------------------------------------------------------------
SCRATCH="$(mktemp -d /tmp/jetimage-slurm.XXXXXX)"
chmod 755 "$SCRATCH"
WORK="$SCRATCH/work"
mkdir -p "$WORK" "$SCRATCH/state" "$SCRATCH/spool"
MUNGED_PID="" CTLD_PID="" SLURMD_PID=""
export SLURM_CONF="$ETC/slurm.conf"
ETC_FILES=(slurm.conf gres.conf)
ETC_TOUCHED=0

stop_pid() {   # stop_pid NAME PID: SIGTERM, then SIGKILL after 15 s
    local name=$1 pid=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $CTLD_PID ]] && kill -0 "$CTLD_PID" 2>/dev/null; then
        local left=()
        mapfile -t left < <(squeue -h -o %i 2>/dev/null)
        if ((${#left[@]})); then
            say "cancelling leftover SLURM jobs: ${left[*]}"
            scancel "${left[@]}" 2>/dev/null
            for _ in $(seq 30); do [[ -z $(squeue -h -t R,CG,PD -o %i 2>/dev/null) ]] && break; sleep 1; done
        fi
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    if ((ETC_TOUCHED)); then   # put /etc/slurm back as it was
        for f in "${ETC_FILES[@]}"; do
            rm -f "$ETC/$f"
            [[ -e $SCRATCH/etc-backup/$f ]] && mv "$SCRATCH/etc-backup/$f" "$ETC/$f"
        done
    fi
    if ((rc != 0)); then
        for f in "$WORK/snakemake.log" "$SCRATCH/slurmctld.log" "$SCRATCH/slurmd.log"; do
            [[ -s $f ]] && { echo "----- last lines of $f" >&2; tail -n 40 "$f" >&2; }
        done
        echo "[slurm-test] FAILED after $((SECONDS - T0)) s; scratch kept in $SCRATCH" >&2
    elif [[ ${KEEP:-0} == 1 ]]; then
        say "scratch kept in $SCRATCH"
    else
        rm -rf "$SCRATCH"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- munge ------------------------------------------------------------------------------------
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "using the munged that is already running"
else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    install -d -m 0755 /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
        </dev/null >"$SCRATCH/munged.out" 2>&1 &
    MUNGED_PID=$!
    for _ in $(seq 40); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        kill -0 "$MUNGED_PID" 2>/dev/null || die "munged exited: $(cat "$SCRATCH/munged.out")"
        sleep 0.25
    done
    munge -n </dev/null | unmunge >/dev/null || die "munge does not answer"
    say "started munged (pid $MUNGED_PID)"
fi

# --- slurm.conf: one node, this machine -------------------------------------------------------
HOST="$(hostname -s)"
NCPU="$(nproc)"
MEM_MB=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
HEADROOM=$((MEM_MB / 10 > 2048 ? MEM_MB / 10 : 2048))
REAL_MB=$((MEM_MB - HEADROOM))
mkdir -p "$ETC" "$SCRATCH/etc-backup"
for f in "${ETC_FILES[@]}"; do   # keep what was there, unless a killed earlier run left it
    if [[ -e $ETC/$f ]] && ! head -1 "$ETC/$f" | grep -qF "$MARK"; then
        cp -p "$ETC/$f" "$SCRATCH/etc-backup/$f"
    fi
done
ETC_TOUCHED=1
cat >"$SLURM_CONF" <<EOF
$MARK: a one-node cluster on localhost; removed when the test ends
# munged started by the test: pid ${MUNGED_PID:-none}
ClusterName=jetimage-localtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/slurmctld.log
SlurmdLogFile=$SCRATCH/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# finished jobs stay visible to squeue/scontrol (there is no accounting database)
MinJobAge=3600
# one fake GPU (gres.conf: File=/dev/null), so the train rule's --gpus=1 is scheduled as on a real site
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$REAL_MB Gres=gpu:1 State=UNKNOWN
PartitionName=localtest Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$MARK" "$HOST" >"$ETC/gres.conf"

# --- slurmctld, slurmd --------------------------------------------------------------------------
slurmctld -D -c -f "$SLURM_CONF" </dev/null >"$SCRATCH/slurmctld.out" 2>&1 &
CTLD_PID=$!
for _ in $(seq 60); do
    scontrol ping 2>/dev/null | grep -q UP && break
    kill -0 "$CTLD_PID" 2>/dev/null || die "slurmctld exited: $(tail -5 "$SCRATCH/slurmctld.log" "$SCRATCH/slurmctld.out" 2>/dev/null)"
    sleep 0.5
done
scontrol ping | grep -q UP || die "slurmctld does not answer"
say "started slurmctld (pid $CTLD_PID)"
slurmd -D -f "$SLURM_CONF" </dev/null >"$SCRATCH/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    kill -0 "$SLURMD_PID" 2>/dev/null || die "slurmd exited: $(tail -5 "$SCRATCH/slurmd.log" "$SCRATCH/slurmd.out" 2>/dev/null)"
    sleep 0.5
done
[[ $state == idle ]] || die "node $HOST is '$state', not idle: $(sinfo -R -h)"
say "started slurmd (pid $SLURMD_PID); node $HOST idle: $NCPU CPUs, ${REAL_MB} MB, gres gpu:1"

# --- the tiny jet study workflow through the slurm executor ----------------------------------
N_SAMPLES=$("$PY" - "$REPO/config.yaml" "$WORK/config.yaml" "$STUDY" "$N_EVENTS" "$N_SHARDS" <<'EOF'
import sys, yaml
src, dst, study, n_events, n_shards = sys.argv[1:]
full = yaml.safe_load(open(src))
# the jets study of config.yaml as a single-study configuration (as tests/conftest.py repo_study)
raw = {"seed": full["seed"], "generation": full["generation"], **full["studies"]["jets"], "study": study}
for sample in raw["samples"]:
    sample["n_events"] = int(n_events)
    sample["n_shards"] = int(n_shards)
raw["train"]["epochs"] = 1
raw["images"]["chunk_size"] = 100
yaml.safe_dump(raw, open(dst, "w"))
print(len(raw["samples"]))
EOF
)

SMK=("$PY" -m snakemake -s "$REPO/Snakefile" --directory "$WORK" --configfile "$WORK/config.yaml"
     --workflow-profile none --profile "$REPO/workflow/profiles/slurm"
     --profile "$REPO/workflow/profiles/slurm-localtest" --cores "$NCPU")
cd "$WORK"
# The jobs the run must submit, per rule, from Snakemake's own plan (rule `all` runs nothing).
"${SMK[@]}" --dry-run </dev/null >"$WORK/dryrun.log" 2>&1 || { tail -30 "$WORK/dryrun.log" >&2; die "dry run failed"; }
EXPECTED="$(awk '/^Job stats:/ {on=1; next} on && /^total/ {exit} on && NF == 2 && $2 ~ /^[0-9]+$/ && $1 != "all" {print $1, $2}' "$WORK/dryrun.log")"
[[ -n $EXPECTED ]] || die "no job table in the dry run (see $WORK/dryrun.log)"
N_EXPECTED=$(awk '{s += $2} END {print s}' <<<"$EXPECTED")
say "running $N_EXPECTED jobs through snakemake --executor slurm: $(tr '\n' ' ' <<<"$EXPECTED")"
t_run=$SECONDS
timeout "$SNAKEMAKE_TIMEOUT" "${SMK[@]}" </dev/null >"$WORK/snakemake.log" 2>&1 \
    || die "snakemake failed or timed out (rc $?) - see $WORK/snakemake.log"
RUN_S=$((SECONDS - t_run))
say "workflow done in ${RUN_S} s"

# --- outputs -----------------------------------------------------------------------------------
"$PY" - "$WORK/config.yaml" "$WORK/results/$STUDY" <<'EOF' || die "outputs are incomplete (see above)"
import json, sys
from pathlib import Path
import uproot, yaml

cfg, out = yaml.safe_load(open(sys.argv[1])), Path(sys.argv[2])
for s in cfg["samples"]:
    shards = sorted((out / "samples" / s["name"]).glob("shard*.root"))
    assert len(shards) == s["n_shards"], f"{s['name']}: {len(shards)} ROOT shards, want {s['n_shards']}"
    for p in shards:
        with uproot.open(p) as f:
            assert f["jets"].num_entries > 0, f"{p}: empty jets tree"
    assert (out / "images" / f"{s['name']}.h5").stat().st_size > 0
metrics = json.loads((out / "metrics.json").read_text())
assert 0.0 <= metrics["cnn"]["auc"] <= 1.0, metrics
assert (out / "plots" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "roc.png is no PNG"
assert (out / "model" / "model.keras").stat().st_size > 0
print(f"[slurm-test] outputs ok: {sum(s['n_shards'] for s in cfg['samples'])} ROOT shards, "
      f"metrics.json (cnn AUC {metrics['cnn']['auc']:.3f}), plots/roc.png")
EOF

# --- every job ran as a SLURM job ----------------------------------------------------------------
# The plugin writes one log per SLURM job: .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<jobid>.log
LOGDIR="$WORK/.snakemake/slurm_logs"
[[ -d $LOGDIR ]] || die "no $LOGDIR: no job went through SLURM"
mapfile -t LOGS < <(find "$LOGDIR" -name '*.log' -type f | sort)
printf '%-20s %-12s %6s %-10s %8s %s\n' rule wildcards jobid state elapsed resources
declare -A SEEN=()
for log in "${LOGS[@]}"; do
    rel=${log#"$LOGDIR"/}
    rule=${rel%%/*}; rule=${rule#rule_}
    jobid=$(basename "$log" .log)
    wc=$(dirname "${rel#*/}"); [[ $wc == . ]] && wc=-
    [[ $jobid =~ ^[0-9]+$ ]] || die "unexpected SLURM log name $rel"
    info=$(scontrol -d -o show job "$jobid" 2>/dev/null) || die "SLURM does not know job $jobid ($rel)"
    echo "$info" >>"$WORK/slurm_jobs.txt"
    field() { grep -o " $1=[^ ]*" <<<"$info" | head -1 | cut -d= -f2-; }
    jstate=$(field JobState); exitc=$(field ExitCode); comment=$(field Comment)
    tres=$(field TRES); gres=$(field JOB_GRES)
    printf '%-20s %-12s %6s %-10s %8s %s gres=%s\n' "$rule" "$wc" "$jobid" "$jstate" "$(field RunTime)" "$tres" "$gres"
    [[ $jstate == COMPLETED && $exitc == 0:0 ]] || die "SLURM job $jobid ($rule) is $jstate, exit $exitc"
    [[ $comment == rule_"$rule"* ]] || die "SLURM job $jobid has comment '$comment', not rule_$rule"
    grep -q "rule $rule:" "$log" || grep -q "localrule $rule:" "$log" || die "$rel does not show rule $rule running"
    # the profile asks a GPU for train only: requested (TresPerJob) and allocated (JOB_GRES)
    if [[ $rule == train ]]; then
        [[ $(field TresPerJob) == gres:gpu:1 && $gres == gpu:1* ]] || die "train job $jobid got no GPU: $info"
    elif [[ $gres == *gpu* ]]; then
        die "$rule job $jobid got a GPU it does not need: $info"
    fi
    SEEN[$rule]=$(( ${SEEN[$rule]:-0} + 1 ))
done
while read -r rule n; do
    [[ ${SEEN[$rule]:-0} -eq $n ]] || die "rule $rule: ${SEEN[$rule]:-0} SLURM jobs, the plan has $n"
done <<<"$EXPECTED"
((${#LOGS[@]} == N_EXPECTED)) || die "${#LOGS[@]} SLURM job logs, the plan has $N_EXPECTED jobs"
# the tiny config's plan, spelled out: samples x N_SHARDS generate, one images per sample, train,
# evaluate (the plotting rules are checked against the plan above)
for want in "generate $((N_SAMPLES * N_SHARDS))" "images $N_SAMPLES" "train 1" "evaluate 1"; do
    read -r rule n <<<"$want"
    [[ ${SEEN[$rule]:-0} -eq $n ]] || die "rule $rule: ${SEEN[$rule]:-0} SLURM jobs, want $n"
done
say "PASSED: $N_EXPECTED jobs, each a completed SLURM job with its own log; workflow ${RUN_S} s, total $((SECONDS - T0)) s"
