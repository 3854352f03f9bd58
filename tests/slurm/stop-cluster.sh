#!/usr/bin/env bash
# Stop the SLURM test cluster that start-cluster.sh started, by the PIDs it recorded.
#
# Stops the daemons in reverse start order (slurmd, slurmctld, munged): SIGTERM, then SIGKILL
# after a bounded wait. A PID is only signalled while it still belongs to the daemon of that name
# (/proc/<pid>/comm), so a recycled PID is never hit. Processes this script did not start are
# left alone. Idempotent: with nothing recorded it says so and exits 0.
#
# Environment: FEATNORM_SLURM_STATE (default /run/featnorm-slurm), as for start-cluster.sh.
# Exit status: 0 all stopped; 1 a daemon survived SIGKILL.
set -euo pipefail

STATE_DIR="${FEATNORM_SLURM_STATE:-/run/featnorm-slurm}"
PID_FILE="$STATE_DIR/pids"
TERM_WAIT_S=15      # slurmd/slurmctld save state on SIGTERM; a few seconds is normal
KILL_WAIT_S=5

log() { printf '[stop-cluster] %s\n' "$*" >&2; }

if [[ ! -r "$PID_FILE" ]]; then
    log "no cluster recorded in $PID_FILE; nothing to stop"
    exit 0
fi

ours() {  # ours <name> <pid>: the PID is alive and still runs that daemon
    [[ -r "/proc/$2/comm" ]] && [[ "$(cat "/proc/$2/comm" 2>/dev/null)" == "$1" ]]
}

wait_gone() {  # wait_gone <name> <pid> <seconds>
    local deadline=$((SECONDS + $3))
    while ours "$1" "$2"; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.2
    done
}

# cancel jobs still queued or running on the test cluster, so no slurmstepd outlives slurmd
if command -v squeue >/dev/null && jobs="$(timeout 10 squeue -h -o %i 2>/dev/null)" && [[ -n "$jobs" ]]; then
    log "cancelling jobs still in the queue: $(echo $jobs)"
    timeout 10 scancel $jobs || log "scancel failed; stopping the daemons anyway"
fi

status=0
# reverse start order: slurmd before slurmctld before munged
while read -r name pid; do
    if ! ours "$name" "$pid"; then
        log "$name (PID $pid) is not running"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if wait_gone "$name" "$pid" "$TERM_WAIT_S"; then
        log "stopped $name (PID $pid)"
        continue
    fi
    log "$name (PID $pid) ignored SIGTERM for ${TERM_WAIT_S} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    if wait_gone "$name" "$pid" "$KILL_WAIT_S"; then
        log "killed $name (PID $pid)"
    else
        log "ERROR: $name (PID $pid) is still running"
        status=1
    fi
done < <(tac "$PID_FILE")

((status == 0)) && rm -f "$PID_FILE"
exit "$status"
