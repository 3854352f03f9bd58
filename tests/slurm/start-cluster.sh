#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests/workflow/test_slurm.py and .ci/run.
#
# What it does (as root, Debian/Ubuntu):
#   1. installs slurmctld slurmd slurm-client munge with apt-get (skipped when already installed);
#   2. makes the short hostname resolve to 127.0.0.1 and writes a minimal /etc/slurm/slurm.conf
#      for this host: one node with this machine's CPUs and 95 % of its memory, one partition,
#      every daemon bound to loopback, no accounting database;
#   3. starts munged, slurmctld and slurmd itself (no systemd needed), waits until the node is
#      idle, runs `srun hostname` as a smoke test, and records the daemons' PIDs for
#      stop-cluster.sh.
#
# No accounting (no slurmdbd/MariaDB): jobs are tracked with `squeue`, so Snakemake must be run
# with `--slurm-status-command squeue` (tests/slurm/profile does that). MinJobAge keeps finished
# jobs visible to squeue for an hour, which the plugin needs and the test uses as evidence.
#
# Idempotent: when the cluster this script started is still up and the node is idle, it exits 0
# at once. Every wait is bounded; on failure it prints the daemon logs' tail and exits non-zero.
#
# Environment (all optional):
#   FEATNORM_SLURM_STATE   folder for the PID file and timings (default /run/featnorm-slurm)
#   FEATNORM_SLURM_TIMEOUT seconds allowed for each daemon to come up (default 60)
#   FEATNORM_SLURM_FORCE=1 overwrite an /etc/slurm/slurm.conf that this script did not write
#
# Exit status: 0 cluster up; 1 a step failed; 2 not root / no apt-get (cannot run here).
set -euo pipefail

STATE_DIR="${FEATNORM_SLURM_STATE:-/run/featnorm-slurm}"
PID_FILE="$STATE_DIR/pids"                 # "name pid" lines, in start order
TIMEOUT_S="${FEATNORM_SLURM_TIMEOUT:-60}"
APT_TIMEOUT_S=600                          # apt-get update + install on a cold mirror
CONF=/etc/slurm/slurm.conf
MARKER="# written by featnorm tests/slurm/start-cluster.sh"
CLUSTER_NAME=featnorm-ci
PARTITION=debug
MEM_FRACTION_PCT=95                        # RealMemory above the detected memory drains the node
MIN_JOB_AGE_S=3600                         # squeue status needs >= 3 x init seconds; the test reads history
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { printf '[start-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

show_logs() {
    for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/munge/munged.log; do
        [[ -r "$f" ]] && { log "--- last lines of $f"; tail -n 20 "$f" >&2; }
    done
    return 0
}

# wait_for <description> <command...>: run the command every 0.2 s until it succeeds or
# TIMEOUT_S passes.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + TIMEOUT_S))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            show_logs
            die "$what did not happen within ${TIMEOUT_S} s (set FEATNORM_SLURM_TIMEOUT to wait longer)"
        fi
        sleep 0.2
    done
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
node_idle() { [[ "$(sinfo -h -N -o %t 2>/dev/null | head -n 1)" == idle* ]]; }
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
munge_ok() { munge -n | unmunge; }

if [[ "$(id -u)" != 0 ]]; then
    log "must run as root (it installs packages and starts system daemons); uid is $(id -u)"
    exit 2
fi

t_start=$EPOCHREALTIME

# ---- already running? -------------------------------------------------------------------------
if [[ -r "$PID_FILE" ]]; then
    all_alive=1
    while read -r name pid; do alive "$pid" || all_alive=0; done <"$PID_FILE"
    if ((all_alive)) && node_idle; then
        log "cluster already running (PIDs in $PID_FILE); nothing to do"
        exit 0
    fi
    log "stale state in $STATE_DIR; stopping what is left and starting afresh"
    "$(dirname "$0")/stop-cluster.sh"
fi

# ---- packages ---------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || { log "apt-get not found; cannot install ${missing[*]}"; exit 2; }
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout "$APT_TIMEOUT_S" apt-get update -qq || die "apt-get update failed"
    timeout "$APT_TIMEOUT_S" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
t_installed=$EPOCHREALTIME

# ---- host name and configuration --------------------------------------------------------------
host="$(hostname -s)"
if ! getent hosts "$host" | grep -q '^127\.'; then
    # the daemons bind to what the host name resolves to (NoInAddrAny); keep them on loopback
    log "mapping $host to 127.0.0.1 in /etc/hosts"
    echo "127.0.0.1 $host" >>/etc/hosts
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm /run/munge \
    /var/log/munge /var/lib/munge "$STATE_DIR"
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[[ -s /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing; reinstall munge (its postinst creates it)"

if [[ -e "$CONF" ]] && ! grep -qF "$MARKER" "$CONF" && [[ "${FEATNORM_SLURM_FORCE:-0}" != 1 ]]; then
    die "$CONF exists and was not written by this script; move it away or set FEATNORM_SLURM_FORCE=1"
fi

# slurmd -C prints this host's "NodeName=... CPUs=N ... RealMemory=M"; take CPUs and memory from it
hw="$(slurmd -C | head -n 1)"
cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
mem_mb="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
[[ -n "$cpus" && -n "$mem_mb" ]] || die "could not read CPUs/RealMemory from 'slurmd -C': $hw"
real_mem=$((mem_mb * MEM_FRACTION_PCT / 100))

cat >"$CONF" <<EOF
$MARKER
# A single-node test cluster: every daemon on loopback, no accounting (status via squeue).
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
# bind to what the host name resolves to (127.0.0.1), not to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups: simplest and independent of the sandbox; memory is not enforced
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# with CR_Core_Memory a job without --mem would otherwise take the whole node
DefMemPerCPU=500
# finished jobs stay visible to squeue this long (Snakemake's squeue status needs it)
MinJobAge=$MIN_JOB_AGE_S
MaxArraySize=10001
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
log "wrote $CONF: node $host, $cpus CPUs, RealMemory=$real_mem MB, partition $PARTITION"

# ---- daemons ----------------------------------------------------------------------------------
: >"$PID_FILE"
record() {  # record <name> <pid file written by the daemon>
    local pid
    pid="$(cat "$2" 2>/dev/null || true)"
    alive "$pid" || { show_logs; die "$1 did not stay up (no live PID in $2)"; }
    echo "$1 $pid" >>"$PID_FILE"
}

t_daemons=$EPOCHREALTIME
if munge_ok >/dev/null 2>&1; then
    log "munged is already running (not started here, so stop-cluster.sh leaves it alone)"
else
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    wait_for "munged answering" munge_ok
    wait_for "munged PID file" test -s /run/munge/munged.pid
    record munged /run/munge/munged.pid
fi

rm -f /run/slurm/slurmctld.pid /run/slurm/slurmd.pid
/usr/sbin/slurmctld -c         # -c: start with no job/node state left from an earlier run
wait_for "slurmctld answering 'scontrol ping'" ctld_up
record slurmctld /run/slurm/slurmctld.pid

/usr/sbin/slurmd
wait_for "slurmd PID file" test -s /run/slurm/slurmd.pid
record slurmd /run/slurm/slurmd.pid
wait_for "node $host idle in sinfo" node_idle
t_idle=$EPOCHREALTIME

out="$(timeout "$TIMEOUT_S" srun -p "$PARTITION" -t 1 -n 1 hostname 2>/dev/null)" \
    || { show_logs; die "smoke test 'srun hostname' failed or timed out"; }
[[ "$out" == "$host"* ]] || die "smoke test 'srun hostname' printed '$out', expected '$host'"
t_end=$EPOCHREALTIME

awk -v a="$t_start" -v b="$t_installed" -v c="$t_daemons" -v d="$t_idle" -v e="$t_end" 'BEGIN {
    printf "install_s=%.1f daemons_to_idle_s=%.1f smoke_srun_s=%.1f total_s=%.1f\n", b - a, d - c, e - d, e - a
}' >"$STATE_DIR/timings"
log "cluster up: $(sinfo -h -o '%P %a %D %t %c' | head -n 1); $(cat "$STATE_DIR/timings")"
log "PIDs recorded in $PID_FILE; stop with tests/slurm/stop-cluster.sh"
