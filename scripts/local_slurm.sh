#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `hydra/launcher=slurm` before a real cluster:
# Debian's slurm-wlm and munge (installed with apt-get when missing), munged, slurmctld and
# slurmd started directly as root (no systemd), one node (this host, its real CPUs and memory),
# one partition `local`, no cgroups and no accounting. Everything it writes (slurm.conf, the
# munge key, state, spool, logs) lives in $RLMUSIC_SLURM_DIR (default /tmp/rlmusic-slurm).
#
#   scripts/local_slurm.sh start     start what is not running; wait until the node is idle
#   scripts/local_slurm.sh stop      cancel the jobs, stop the daemons
#   scripts/local_slurm.sh status    the daemons and the node; exit 0 when the cluster is up
#   scripts/local_slurm.sh env       the line to eval for sbatch / sinfo / submitit to find it:
#                                      eval "$(scripts/local_slurm.sh env)"
# start and stop are idempotent. RLMUSIC_SLURM_PORT (default 6817) is slurmctld's port, slurmd
# takes the next one. Without accounting `sacct` fails: submitit then says "Bypassing sacct
# error" and follows each job by its result file.
set -euo pipefail
dir=${RLMUSIC_SLURM_DIR:-/tmp/rlmusic-slurm}
port=${RLMUSIC_SLURM_PORT:-6817}
conf=$dir/slurm.conf
socket=$dir/munge/munge.socket
export SLURM_CONF=$conf

die() {
  echo "[local_slurm] $*" >&2
  exit 1
}
say() { echo "[local_slurm] $*"; }

# the pid in a daemon's pid file, when that process is alive
alive() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && echo "$pid"
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n1; }

install_slurm() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sinfo >/dev/null && return 0
  command -v apt-get >/dev/null \
    || die "slurm is not installed and there is no apt-get to install it (Debian's slurm-wlm, munge)"
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d or no systemd: the packages' own services stay down, we start the daemons below
  { apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
      && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }; } \
    || die "apt-get could not install slurm-wlm and munge"
}

write_conf() {
  mkdir -p "$dir"/{state,spool,log,munge}
  chmod 755 "$dir/munge"  # other users' jobs reach the socket; the key itself is 600
  if [ ! -s "$dir/munge/munge.key" ]; then
    mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null 2>&1 \
      || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$dir/munge/munge.key"
  fi
  local host node
  host=$(hostname -s)
  # this host as slurmd sees it: NodeName=<host> CPUs=... Boards=... RealMemory=...
  node=$(slurmd -C 2>/dev/null | head -n1)
  [[ $node == NodeName=* ]] || die "slurmd -C could not describe this host: $node"
  cat >"$conf.new" <<EOF
# written by scripts/local_slurm.sh: a one-node cluster on $host, no cgroups, no accounting
ClusterName=rlmusic
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# a job asking for more than the node has is refused at submission, not left pending forever
EnforcePartLimits=ALL
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$conf.new" "$conf"
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root: it starts munged, slurmctld and slurmd"
  install_slurm
  if [ -n "$(alive "$dir/slurmctld.pid")" ] && [ -n "$(alive "$dir/slurmd.pid")" ] \
    && [ -n "$(alive "$dir/munge/munged.pid")" ]; then
    say "already running ($conf)"
  else
    write_conf
    if [ -z "$(alive "$dir/munge/munged.pid")" ]; then
      munged --force --key-file="$dir/munge/munge.key" --socket="$socket" \
        --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
        --log-file="$dir/log/munged.log" \
        || die "munged did not start (see $dir/log/munged.log)"
    fi
    if [ -z "$(alive "$dir/slurmctld.pid")" ]; then
      slurmctld -f "$conf" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
    fi
    if [ -z "$(alive "$dir/slurmd.pid")" ]; then
      slurmd -f "$conf" || die "slurmd did not start (see $dir/log/slurmd.log)"
    fi
  fi
  local state=""
  for _ in $(seq 60); do
    state=$(node_state)
    case $state in
      idle | mixed | allocated | completing) break ;;
      drain* | down*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  case $state in
    idle | mixed | allocated | completing) ;;
    *) die "the node is '${state:-not reported}' after 60 s (see $dir/log/)" ;;
  esac
  say "up: node $(hostname -s) $state, partition local; for sbatch/sinfo/submitit:"
  echo "export SLURM_CONF=$conf"
}

stop() {
  local any="" pid
  if [ -n "$(alive "$dir/slurmctld.pid")" ]; then
    # this cluster's jobs only: their processes would outlive slurmd otherwise
    scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true
    for _ in $(seq 15); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  for name in slurmd.pid slurmctld.pid munge/munged.pid; do
    pid=$(alive "$dir/$name") || continue
    any=1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$dir/$name"
  done
  if [ -n "$any" ]; then say "stopped"; else say "not running"; fi
}

status() {
  local up=1 name
  for name in munge/munged.pid slurmctld.pid slurmd.pid; do
    if pid=$(alive "$dir/$name"); then
      say "$(basename "$name" .pid): running (pid $pid)"
    else
      say "$(basename "$name" .pid): stopped"
      up=0
    fi
  done
  [ "$up" = 1 ] || exit 1
  say "node: $(node_state || true)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac
