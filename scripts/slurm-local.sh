#!/usr/bin/env bash
# A private SLURM on this one machine, for trying the slurm/*.sbatch scripts and for
# tests/e2e/slurm.sh. No systemd, no /etc/slurm: munged, slurmctld and slurmd run as root on
# loopback, with every config, state, spool, log and pid file under one folder.
#
#   scripts/slurm-local.sh start [--nodes 1|2] [--preemption]
#                                                start it (prints the export line for clients)
#   scripts/slurm-local.sh stop                  stop the daemons (the folder stays, for the logs)
#   scripts/slurm-local.sh status                sinfo, or "not running" (exit 1)
#
#   HETRAIN_SLURM_DIR   the folder (default /tmp/hetrain-slurm)
#
# --nodes 1 (default): one node "localhost", CPUs=4 declared on whatever the machine has
#   (SlurmdParameters=config_overrides), so a 1 aggregator + 2..3 trainers job runs on 2 cores.
# --nodes 2: two fake nodes n1 and n2 (two slurmd on this host, own ports, CPUs=2 each). This is
#   what heterogeneous jobs (#SBATCH hetjob) need: on a single node they never start, the backfill
#   planner reserves whole nodes. MPI across the fake nodes needs OMPI_MCA_btl=self,tcp (shared
#   memory crashes across them).
# --preemption (with --nodes 2): preemption by partition priority, as on a cluster with a
#   scavenger partition. Partitions: debug (n1, n2; default; never preempted), scavenger (n2,
#   PriorityTier 1, PreemptMode=REQUEUE, GraceTime=$HETRAIN_SLURM_GRACE s, default 20) and
#   owner (n2, PriorityTier 10). A job in owner (or in debug) that needs n2's CPUs preempts the
#   scavenger jobs there: SLURM sends them SIGTERM, kills them GraceTime later, and puts them back in the
#   queue (README "SLURM", preemptible nodes).
# Clients (sinfo, sbatch, srun, scontrol) need SLURM_CONF=<folder>/slurm.conf; `start` prints it.
#
# Packages (Debian 12, SLURM 22.05): slurm-wlm slurmctld slurmd slurm-client munge
# (scripts/install-deps.sh installs them). Recipe and its facts: see README "SLURM".
set -uo pipefail

dir=${HETRAIN_SLURM_DIR:-/tmp/hetrain-slurm}
conf=$dir/slurm.conf
me=$(basename "$0")
die() { echo "$me: $*" >&2; exit 1; }

need_packages() {
  local missing=() pair
  for pair in slurmctld:slurmctld slurmd:slurmd munged:munge sinfo:slurm-client \
              scontrol:slurm-client sbatch:slurm-client srun:slurm-client; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$me: missing package(s): $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" \
         "(scripts/install-deps.sh, or apt-get install slurm-wlm slurmctld slurmd slurm-client munge)" >&2
    exit 1
  fi
  [ -r /etc/munge/munge.key ] || die "no readable /etc/munge/munge.key (package munge creates it)"
}

# Sets PORT to a TCP port nothing listens on (random in 20000-59999; a connect to it on loopback
# fails), not handed out before (not run in $(...): used_ports must persist).
used_ports=""
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    case " $used_ports " in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports="$used_ports $p"; PORT=$p; return 0
    fi
  done
  die "no free TCP port found"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running() { pid_alive "$dir/run/slurmctld.pid"; }

write_conf() {
  local nodes=$1 preemption=$2 mem ctl_port slurmd_port n1_port n2_port
  free_port; ctl_port=$PORT
  free_port; slurmd_port=$PORT
  free_port; n1_port=$PORT
  free_port; n2_port=$PORT
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat > "$conf" <<EOF
# Written by scripts/slurm-local.sh: a private SLURM on loopback, everything under $dir.
ClusterName=hetrain-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: a requeued job may start again only after this many seconds (default 120); short
# here so that the requeue test does not idle for two minutes.
AuthInfo=socket=$dir/munge/sock,cred_expire=10
CredType=cred/munge
SlurmctldPort=$ctl_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdSpoolDir=$dir/spool/%n
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmdLogFile=$dir/log/slurmd-%n.log
TmpFS=$dir/tmp/%n
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=300
EOF
  if [ "$nodes" = 1 ]; then
    cat >> "$conf" <<EOF
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  else
    cat >> "$conf" <<EOF
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$n1_port CPUs=2 RealMemory=$((mem / 2)) State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$n2_port CPUs=2 RealMemory=$((mem / 2)) State=UNKNOWN
EOF
    if [ "$preemption" = 1 ]; then
      cat >> "$conf" <<EOF
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP PriorityTier=5 PreemptMode=OFF
PartitionName=scavenger Nodes=n2 MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=${HETRAIN_SLURM_GRACE:-20}
PartitionName=owner Nodes=n2 MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    else
      echo "PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP" >> "$conf"
    fi
  fi
}

start() {
  local nodes=1 preemption=0
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) nodes=${2:-}; shift 2 || die "--nodes needs 1 or 2" ;;
      --nodes=*) nodes=${1#--nodes=}; shift ;;
      --preemption) preemption=1; shift ;;
      *) die "unknown option '$1' (start [--nodes 1|2] [--preemption])" ;;
    esac
  done
  case $nodes in 1|2) ;; *) die "--nodes must be 1 or 2, not '$nodes'" ;; esac
  [ "$preemption" = 0 ] || [ "$nodes" = 2 ] || die "--preemption needs --nodes 2 (it preempts jobs on n2)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and this private munged run as root)"
  need_packages
  if running; then
    [ "$(cat "$dir/nodes" 2>/dev/null)" = "$nodes" ] ||
      die "already running in $dir with --nodes $(cat "$dir/nodes" 2>/dev/null); stop it first"
    echo "$me: already running in $dir"
    echo "export SLURM_CONF=$conf"
    return 0
  fi
  mkdir -p "$dir"/{munge,state,spool,run,log,tmp} || die "cannot create $dir"
  echo "$nodes" > "$dir/nodes"
  # munged refuses a socket folder of mode 700 ("Socket is inaccessible"); 711 works. Every
  # folder above it must be searchable by all too (mktemp -d makes 700: chmod 711 it).
  chmod 711 "$dir" "$dir/munge"
  install -m 600 /etc/munge/munge.key "$dir/munge/munge.key" || die "cannot copy the munge key"
  pid_alive "$dir/munge/munged.pid" || \
    munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/sock" \
           --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed" \
           --log-file="$dir/munge/munged.log" ||
    die "munged failed to start (see $dir/munge/munged.log)"
  write_conf "$nodes" "$preemption"
  export SLURM_CONF=$conf
  local n names=localhost
  [ "$nodes" = 2 ] && names="n1 n2"
  for n in $names; do mkdir -p "$dir/spool/$n" "$dir/tmp/$n"; done
  # "Could not open node_state" in slurmctld.log on the very first start is harmless.
  slurmctld || die "slurmctld failed to start (see $dir/log/slurmctld.log)"
  for n in $names; do
    slurmd -N "$n" || die "slurmd -N $n failed to start (see $dir/log/slurmd-$n.log)"
  done
  # Up when every node is idle (about a second).
  local want=$((nodes)) idle
  for _ in $(seq 60); do
    idle=$(sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 == "idle"' | wc -l)
    if [ "$idle" -ge "$want" ]; then
      echo "$me: SLURM up in $dir ($nodes node(s))"
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.5
  done
  sinfo -N >&2 2>&1
  die "nodes not idle after 30 s (logs in $dir/log)"
}

stop() {
  export SLURM_CONF=$conf
  local f
  if running; then scontrol shutdown >/dev/null 2>&1; fi
  # Wait for every daemon of ours to end (scontrol shutdown takes about 2 s), then force.
  for _ in $(seq 40); do
    local alive=0
    for f in "$dir"/run/*.pid; do pid_alive "$f" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  for f in "$dir"/run/*.pid; do pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null; done
  if pid_alive "$dir/munge/munged.pid"; then
    munged -s --socket="$dir/munge/sock" >/dev/null 2>&1 || kill "$(cat "$dir/munge/munged.pid")"
  fi
  rm -f "$dir"/run/*.pid
  echo "$me: stopped (logs stay in $dir/log)"
}

status() {
  export SLURM_CONF=$conf
  running || { echo "$me: not running (no live slurmctld in $dir)"; exit 1; }
  echo "export SLURM_CONF=$conf"
  sinfo
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $me start [--nodes 1|2] | stop | status   (folder: \$HETRAIN_SLURM_DIR, default /tmp/hetrain-slurm)" >&2
     exit 2 ;;
esac
