#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying this profile (and for `make test-cluster`):
#
#   workflow/profiles/slurm-local/local-cluster.sh start [STATE_DIR]   # install if missing, configure, start
#   workflow/profiles/slurm-local/local-cluster.sh stop  [STATE_DIR]
#   workflow/profiles/slurm-local/local-cluster.sh status [STATE_DIR]
#
# Needs root: installs Debian's slurm-wlm and munge with apt-get where missing, and writes
# /etc/slurm/slurm.conf (and gres.conf where nvidia-smi finds GPUs) and, where there is none,
# /etc/munge/munge.key. Not for a machine that runs Slurm or munge already (a lab server, a cluster
# node): `start` refuses when it finds a slurmctld, slurmd or munged it did not start, or a
# /etc/slurm/slurm.conf it did not write. No systemd: munged, slurmctld and slurmd run in the
# background, and their PIDs are recorded in STATE_DIR (default /tmp/iugc-slurm). `stop` cancels
# the jobs of this cluster only, stops only the processes whose PIDs it recorded, and removes only
# the files it wrote. The node is this machine as it is (its CPUs, most of its memory, a `gpu` GRES
# only where nvidia-smi finds GPUs); accounting is off, so job records go to a text file
# (JobCompType=jobcomp/filetxt) and job status comes from squeue (the profile sets
# slurm-status-command: squeue).
set -euo pipefail

action=${1:-status}
state=${2:-/tmp/iugc-slurm}
conf_dir=/etc/slurm
munge_key=/etc/munge/munge.key
daemons=(munged slurmctld slurmd)
# The first line of every file this script writes; `start` and `stop` recognise theirs by it.
marker="# written by iugc local-cluster.sh (state: $state)"

say() { echo "local-cluster: $*" >&2; }

# The PID recorded for daemon $1, if that process is still the daemon this script started.
ours() {
  local pid
  pid=$(cat "$state/pids/$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$1" ] && echo "$pid"
}

# Refuse a machine where Slurm or munge runs, or is configured, without this script.
check_machine() {
  local name pids
  for name in "${daemons[@]}"; do
    pids=$(pgrep -x "$name" || true)
    for pid in $pids; do
      if [ "$pid" != "$(ours "$name" || true)" ]; then
        say "a $name (pid $pid) that this script did not start (state folder $state) is running; refusing to start (this machine runs Slurm or munge already: use its cluster with workflow/profiles/slurm)"
        exit 1
      fi
    done
  done
  for file in "$conf_dir/slurm.conf" "$conf_dir/gres.conf"; do
    if [ -e "$file" ] && [ "$(head -n 1 "$file")" != "$marker" ]; then
      say "$file exists and was not written by this script; refusing to start (it would replace that cluster's configuration)"
      exit 1
    fi
  done
}

install() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
  local host cpus mem gpus gres=""
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))   # MB, leave 10 % to the system
  gpus=$( (command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -c '^GPU') || true )
  mkdir -p "$state"/{spool,ctld,log,pids} "$conf_dir"
  if [ "${gpus:-0}" -gt 0 ]; then
    gres="Gres=gpu:$gpus"
    echo "$marker" > "$conf_dir/gres.conf"
    for i in $(seq 0 $((gpus - 1))); do echo "NodeName=$host Name=gpu File=/dev/nvidia$i" >> "$conf_dir/gres.conf"; done
  fi
  cat > "$conf_dir/slurm.conf" <<EOF
$marker
ClusterName=iugc
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
GresTypes=gpu
DefMemPerCPU=$(( mem / cpus ))
NodeName=$host CPUs=$cpus RealMemory=$mem $gres State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  if [ ! -s "$munge_key" ]; then
    mkdir -p "$(dirname "$munge_key")"
    dd if=/dev/urandom of="$munge_key" bs=1024 count=1 2>/dev/null
    chmod 400 "$munge_key"
    echo "$munge_key" > "$state/created-munge-key"
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || mkdir -p /run/munge
}

# Start daemon $1 in the foreground of a background process of its own session, and record its PID.
launch() {
  local name=$1; shift
  ours "$name" >/dev/null && return
  setsid "$name" "$@" >>"$state/log/$name.out" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}

start() {
  check_machine
  if [ "$(id -u)" -ne 0 ]; then
    say "needs root (it installs slurm-wlm and munge, and writes $conf_dir and /etc/munge)"
    exit 2
  fi
  install
  configure
  launch munged --foreground --force
  sleep 1
  launch slurmctld -D -i
  launch slurmd -D
  for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  say "the node did not come up; see $state/log/ (stop it with: $0 stop $state)"
  exit 1
}

stop() {
  local name pid jobs
  # Jobs of this cluster only: its controller is the one this script started and configured.
  if ours slurmctld >/dev/null && [ "$(head -n 1 "$conf_dir/slurm.conf" 2>/dev/null)" = "$marker" ]; then
    jobs=$(squeue -h -o '%i' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 20); do [ -z "$(squeue -h -o '%i' 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  for name in slurmd slurmctld munged; do
    pid=$(ours "$name") || { rm -f "$state/pids/$name"; continue; }
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/pids/$name"
  done
  # Remove the configuration this script wrote: with it and no controller, every `scontrol` call
  # waits ~9 s for an answer, and the Slurm executor plugin makes one each time Snakemake starts.
  for file in "$conf_dir/slurm.conf" "$conf_dir/gres.conf"; do
    if [ -e "$file" ] && [ "$(head -n 1 "$file")" = "$marker" ]; then rm -f "$file"; fi
  done
  if [ -e "$state/created-munge-key" ]; then
    rm -f "$(cat "$state/created-munge-key")" "$state/created-munge-key"
  fi
}

status() {
  local name pid
  for name in "${daemons[@]}"; do
    if pid=$(ours "$name"); then echo "$name: running (pid $pid)"; else echo "$name: not running (not started by this script)"; fi
  done
  if ours slurmctld >/dev/null; then sinfo; fi
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status [STATE_DIR]" >&2; exit 2 ;;
esac
