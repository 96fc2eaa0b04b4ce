#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying the Slurm profile (and for the tests):
#
#   workflow/profiles/slurm/local-cluster.sh start [STATE_DIR]   # install if missing, configure, start
#   workflow/profiles/slurm/local-cluster.sh stop  [STATE_DIR]
#   workflow/profiles/slurm/local-cluster.sh status
#
# Debian's slurm-wlm and munge (installed with apt-get where missing; needs root). No systemd:
# munged, slurmctld and slurmd run as background processes of this script's caller. The node is
# this machine as it is (its CPUs, most of its memory, a `gpu` GRES only where nvidia-smi finds
# GPUs); accounting is off, so job records go to a text file (JobCompType=jobcomp/filetxt) and
# job status comes from squeue (the profiles set --slurm-status-command squeue).
set -euo pipefail

action=${1:-status}
state=${2:-/tmp/iugc-slurm}
conf_dir=/etc/slurm

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
  mkdir -p "$state"/{spool,ctld,log} "$conf_dir"
  if [ "${gpus:-0}" -gt 0 ]; then
    gres="Gres=gpu:$gpus"
    : > "$conf_dir/gres.conf"
    for i in $(seq 0 $((gpus - 1))); do echo "NodeName=$host Name=gpu File=/dev/nvidia$i" >> "$conf_dir/gres.conf"; done
  fi
  cat > "$conf_dir/slurm.conf" <<EOF
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
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chmod 400 /etc/munge/munge.key
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || mkdir -p /run/munge
}

start() {
  install
  configure
  pgrep -x munged >/dev/null || munged --force
  pgrep -x slurmctld >/dev/null || slurmctld -i
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "local-cluster: the node did not come up; see $state/log/" >&2
  exit 1
}

stop() {
  scancel --user="$(id -un)" 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  for _ in $(seq 1 20); do pgrep -x 'slurmctld|slurmd' >/dev/null || break; sleep 0.5; done
  # Remove the configuration this script wrote: with it and no controller, every `scontrol` call
  # waits ~9 s for an answer, and the Slurm executor plugin makes one each time Snakemake starts.
  rm -f "$conf_dir/slurm.conf" "$conf_dir/gres.conf"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status [STATE_DIR]" >&2; exit 2 ;;
esac
