#!/usr/bin/env bash
# A LAN of several hosts inside this machine, for tests and benchmarks (root; Linux network
# namespaces joined to the root namespace by rate-shaped veth pairs; docs: README "LAN").
#
#   scripts/lan-sim.sh up NAME --hosts N --rate RATE[,RATE...] [--cpus CPUS[,...]] [--slots K[,...]]
#   scripts/lan-sim.sh run NAME -- MPIRUN-ARGS...     mpirun across the hosts
#   scripts/lan-sim.sh exec NAME HOST -- COMMAND...   a plain process on host HOST (0..N-1)
#   scripts/lan-sim.sh counters NAME                  bytes in and out of each host's link, JSON
#   scripts/lan-sim.sh env NAME                       the path of the env file (sh syntax)
#   scripts/lan-sim.sh down NAME                      removes everything `up` made
#
# Host i is the namespace NAME-hI with address 10.231.K.2 on its own /24 (K picked free among
# 1..254, under a lock, so sims of different NAMEs never share a subnet); the root namespace end
# (10.231.K.1) is its "switch port". Both directions of each link are shaped with tbf at the
# host's rate (one RATE for all, or one per host, as tc writes rates: 1gbit, 50mbit, ...); a
# packet from host a to host b crosses a's egress and b's ingress, so it moves at min(rate a,
# rate b). Forwarding in the root namespace lets the hosts reach each other.
# --cpus pins host i's processes (taskset -c, e.g. --cpus 0,1,1) to give hosts unequal compute;
# --slots K writes slots=K into the hostfile (default 2; one for all or one per host): with
# `mpirun --map-by slot` and as many ranks as slots, --slots 1,2,2 puts rank 0 alone on host 0
# and ranks 1-2, 3-4 on hosts 1 and 2.
#
# `up` writes /run/hetrain-lan/NAME/: hostfile (one address per host), agent (Open MPI's
# plm_rsh_agent: it enters the host's namespace and a new UTS namespace whose host name is
# NAME-hI, so each simulated host has its own orted and its own name, and MPI_COMM_TYPE_SHARED
# groups only ranks of one simulated host), hosts.json (names, addresses, rates in bit/s, CPUs)
# and env (LAN_SIM_* variables). `run` adds the hostfile, the agent, --mca pml ob1, btl tcp,self
# (no shared-memory or UCX shortcut between simulated hosts) and the interface filters.
#
# Exit codes: 0 ok; 2 bad usage; 77 namespaces, veth, tbf or unshare cannot be used here (the
# reason printed; tests treat it as skipped); 1 anything else. `up` removes what it made when it
# fails halfway; `down` also ends processes still running in the namespaces (all started by the
# sim's users) and is safe to call twice.
set -euo pipefail

state_root=${LAN_SIM_STATE:-/run/hetrain-lan}
prefix=10.231
self=$(readlink -f "$0")

die() { echo "lan-sim: $*" >&2; exit 1; }
usage() { echo "lan-sim: $*" >&2; echo "usage: see the top of $self" >&2; exit 2; }
unavailable() { echo "lan-sim: SKIP: $*" >&2; exit 77; }

check_name() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_]{0,19}$ ]] ||
    usage "NAME '$1' must be 1-20 letters, digits or _ (it names namespaces NAME-hI)"
}

# rate_bits RATE: tc's rate as bits per second (for hosts.json and the tests), or empty if bad.
rate_bits() {
  local r=$1 num unit
  [[ $r =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|tbit)$ ]] || return 0
  num=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[3]}
  case $unit in
    bit) awk -v n="$num" 'BEGIN{printf "%.0f", n}' ;;
    kbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e3}' ;;
    mbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e6}' ;;
    gbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e9}' ;;
    tbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e12}' ;;
  esac
}

# A subnet K is taken when any root-namespace address or route uses 10.231.K., or another sim
# reserved it (its state dir lists it before it makes anything).
subnet_taken() {
  local k=$1
  ip -4 -o addr show | grep -q " $prefix\.$k\." && return 0
  ip -4 route show | grep -qE "(^| )$prefix\.$k\." && return 0
  grep -qx "$k" "$state_root"/*/subnets 2>/dev/null && return 0
  return 1
}

# Removes what the state dir $1 records (namespaces, veths), ends processes left in them.
teardown() {
  local dir=$1 ns k pid
  if [ -f "$dir/netns" ]; then
    while read -r ns; do
      [ -n "$ns" ] || continue
      if ip netns list 2>/dev/null | grep -q "^$ns\b"; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        sleep 0.2
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
      fi
    done <"$dir/netns"
  fi
  if [ -f "$dir/subnets" ]; then
    while read -r k; do
      [ -n "$k" ] || continue
      ip link del "hlan$k" 2>/dev/null || true
    done <"$dir/subnets"
  fi
  rm -rf "$dir"
}

cmd_down() {
  [ $# -eq 1 ] || usage "down takes NAME"
  check_name "$1"
  [ "$(id -u)" -eq 0 ] || die "down needs root"
  [ -d "$state_root/$1" ] || { echo "lan-sim: no sim named $1 (nothing to remove)"; return 0; }
  teardown "$state_root/$1"
  echo "lan-sim: $1 removed"
}

# shape DEV RATE [NETNS]: tbf on DEV's egress. The burst is 1 ms at the rate (125 kB at 1 Gbit/s,
# 6.25 kB at 50 Mbit/s; at least 4 KiB): what passes at full speed after the link was idle. A
# real link never beats its rate, and a larger burst would let a short message (a link probe's)
# through faster than the rate: with the recipe's 256 KiB a 512 KiB message measured 217 MB/s on
# 1 Gbit/s, and a 64 KiB one on 50 Mbit/s would not see the limit at all. tbf splits a GSO packet
# larger than the burst into MTU-sized ones. The latency bounds the queue.
shape() {
  local dev=$1 rate=$2 ns=${3:-} bits burst
  bits=$(rate_bits "$rate")
  burst=$(awk -v b="$bits" 'BEGIN{x=b/8/1000; if (x < 4096) x=4096; printf "%.0f", x}')
  if [ -n "$ns" ]; then
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  else
    tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  fi
}

# make_host DIR I K RATE: namespace NAME-hI on 10.231.K.0/24, shaped both ways.
make_host() {
  local dir=$1 i=$2 k=$3 rate=$4 name ns err
  name=$(basename "$dir")
  ns=$name-h$i
  ! ip netns list | grep -q "^$ns\b" || die "a namespace named $ns exists already (not this sim's)"
  echo "$ns" >>"$dir/netns"
  if ! err=$(ip netns add "$ns" 2>&1); then
    unavailable "cannot make network namespaces here ('ip netns add' said: $err)"
  fi
  if ! err=$(ip link add "hlan$k" type veth peer name "hlan${k}p" 2>&1); then
    unavailable "cannot make veth pairs here ('ip link add ... type veth' said: $err)"
  fi
  ip link set "hlan${k}p" netns "$ns"
  ip addr add "$prefix.$k.1/24" dev "hlan$k"
  ip link set "hlan$k" up
  ip netns exec "$ns" ip addr add "$prefix.$k.2/24" dev "hlan${k}p"
  ip netns exec "$ns" ip link set "hlan${k}p" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip route add default via "$prefix.$k.1"
  if ! err=$(shape "hlan$k" "$rate" 2>&1); then
    case $err in
      *"qdisc kind is unknown"* | *"not supported"*) unavailable "no tbf qdisc here (tc said: $err)" ;;
      *) die "tc could not shape hlan$k at $rate: $err" ;;
    esac
  fi
  shape "hlan${k}p" "$rate" "$ns"
}

write_agent() {
  local dir=$1 i
  {
    echo '#!/bin/sh'
    echo "# Open MPI's plm_rsh_agent for the lan sim $(basename "$dir") (written by scripts/lan-sim.sh)."
    echo '# "Logs in" to a simulated host: $1 (after any options) is its address, the rest the command.'
    echo '# It enters the host'"'"'s network namespace and a new UTS namespace named after the host.'
    echo 'while [ "${1#-}" != "$1" ]; do shift; done'
    echo 'host=$1; shift'
    echo 'case "$host" in'
    for ((i = 0; i < hosts; i++)); do
      echo "  ${addrs[i]}) ns=${netns[i]}; cpus='${cpus[i]}';;"
    done
    echo '  *) echo "lan-sim agent: unknown host $host" >&2; exit 1;;'
    echo 'esac'
    echo 'exec ip netns exec "$ns" unshare --uts sh -c '"'"'hostname "$0" && if [ -n "$1" ]; then exec taskset -c "$1" sh -c "$2"; else exec sh -c "$2"; fi'"'"' "$ns" "$cpus" "$*"'
  } >"$dir/agent"
  chmod +x "$dir/agent"
}

write_state() {
  local dir=$1 name i subnets
  name=$(basename "$dir")
  : >"$dir/hostfile"
  for ((i = 0; i < hosts; i++)); do echo "${addrs[i]} slots=${slots[i]}" >>"$dir/hostfile"; done
  write_agent "$dir"
  subnets=$(printf "$prefix.%s.0/24," "${ks[@]}")
  subnets=${subnets%,}
  {
    echo "LAN_SIM_NAME=$name"
    echo "LAN_SIM_DIR=$dir"
    echo "LAN_SIM_HOSTS=$hosts"
    echo "LAN_SIM_HOSTFILE=$dir/hostfile"
    echo "LAN_SIM_AGENT=$dir/agent"
    echo "LAN_SIM_SUBNETS=$subnets"
    echo "LAN_SIM_ADDRS='${addrs[*]}'"
    echo "LAN_SIM_NETNS='${netns[*]}'"
    echo "LAN_SIM_RATES='${rates[*]}'"
    echo "LAN_SIM_CPUS='${cpus[*]}'"
  } >"$dir/env"
  {
    echo "{\"name\": \"$name\", \"subnets\": \"$subnets\", \"hosts\": ["
    for ((i = 0; i < hosts; i++)); do
      [ "$i" -eq 0 ] || echo ","
      printf '  {"host": %d, "netns": "%s", "address": "%s", "veth": "hlan%s", "rate": "%s", "rate_bits": %s, "cpus": "%s"}' \
        "$i" "${netns[i]}" "${addrs[i]}" "${ks[i]}" "${rates[i]}" "$(rate_bits "${rates[i]}")" "${cpus[i]}"
    done
    echo "]}"
  } >"$dir/hosts.json"
}

cmd_up() {
  [ $# -ge 1 ] || usage "up takes NAME --hosts N --rate RATE[,RATE...]"
  local name=$1 rate_arg="" cpu_arg="" slot_arg=2 i k dir
  shift
  check_name "$name"
  hosts=""
  while [ $# -gt 0 ]; do
    case $1 in
      --hosts) hosts=${2:-}; shift 2 || usage "--hosts needs a value" ;;
      --rate) rate_arg=${2:-}; shift 2 || usage "--rate needs a value" ;;
      --cpus) cpu_arg=${2:-}; shift 2 || usage "--cpus needs a value" ;;
      --slots) slot_arg=${2:-}; shift 2 || usage "--slots needs a value" ;;
      *) usage "unknown option '$1' for up" ;;
    esac
  done
  [[ $hosts =~ ^[1-9][0-9]*$ ]] && [ "$hosts" -le 64 ] || usage "--hosts must be 1..64, not '$hosts'"
  [ -n "$rate_arg" ] || usage "--rate is required (e.g. --rate 1gbit or --rate 1gbit,1gbit,50mbit)"
  IFS=, read -r -a rates <<<"$rate_arg"
  if [ "${#rates[@]}" -eq 1 ]; then
    for ((i = 1; i < hosts; i++)); do rates[i]=${rates[0]}; done
  fi
  [ "${#rates[@]}" -eq "$hosts" ] || usage "--rate lists ${#rates[@]} rates for $hosts hosts"
  for i in "${rates[@]}"; do
    [ "$(rate_bits "$i")" ] && [ "$(rate_bits "$i")" -ge 8000 ] ||
      usage "rate '$i' is not a tc rate of at least 8kbit, such as 1gbit or 50mbit"
  done
  IFS=, read -r -a slots <<<"$slot_arg"
  if [ "${#slots[@]}" -eq 1 ]; then
    for ((i = 1; i < hosts; i++)); do slots[i]=${slots[0]}; done
  fi
  [ "${#slots[@]}" -eq "$hosts" ] || usage "--slots lists ${#slots[@]} counts for $hosts hosts"
  for i in "${slots[@]}"; do
    [[ $i =~ ^[1-9][0-9]*$ ]] || usage "--slots entry '$i' is not a positive integer"
  done
  cpus=()
  if [ -n "$cpu_arg" ]; then
    IFS=, read -r -a cpus <<<"$cpu_arg"
    [ "${#cpus[@]}" -eq "$hosts" ] || usage "--cpus lists ${#cpus[@]} entries for $hosts hosts"
    for i in "${cpus[@]}"; do
      [[ $i =~ ^[0-9]+(-[0-9]+)?$ ]] || usage "--cpus entry '$i' is not a CPU or range (0, 2-3)"
    done
  else
    for ((i = 0; i < hosts; i++)); do cpus[i]=""; done
  fi

  [ "$(id -u)" -eq 0 ] || unavailable "needs root to make network namespaces (running as $(id -un))"
  command -v ip >/dev/null || unavailable "no 'ip' command (iproute2)"
  command -v tc >/dev/null || unavailable "no 'tc' command (iproute2)"
  ip netns list >/dev/null 2>&1 || unavailable "'ip netns' does not work here"
  unshare --uts true 2>/dev/null || unavailable "'unshare --uts' does not work here"
  [ -z "$cpu_arg" ] || command -v taskset >/dev/null || unavailable "--cpus needs taskset"

  mkdir -p "$state_root"
  dir=$state_root/$name
  exec 9>"$state_root/.lock"
  flock -w 60 9 || die "another lan-sim up held $state_root/.lock for 60 s"
  [ ! -e "$dir" ] || { flock -u 9; die "a sim named $name exists already ($dir); run: $self down $name"; }
  mkdir "$dir"
  # From here on a failure removes everything this up made.
  trap 'rc=$?; if [ $rc -ne 0 ]; then teardown "'"$dir"'"; echo "lan-sim: up $name failed (exit $rc), removed what it made" >&2; fi' EXIT
  ks=()
  for ((k = 1; k <= 254 && ${#ks[@]} < hosts; k++)); do
    subnet_taken "$k" || ks+=("$k")
  done
  [ "${#ks[@]}" -eq "$hosts" ] || die "only ${#ks[@]} free /24 subnets in $prefix.0.0/16 for $hosts hosts"
  printf '%s\n' "${ks[@]}" >"$dir/subnets"
  flock -u 9
  addrs=() netns=()
  for ((i = 0; i < hosts; i++)); do
    addrs[i]=$prefix.${ks[i]}.2
    netns[i]=$name-h$i
    make_host "$dir" "$i" "${ks[i]}" "${rates[i]}"
  done
  # The root namespace is the switch between hosts. Forwarding is left on after down: other sims
  # (or the machine) may rely on it, and these subnets exist only inside the machine.
  sysctl -qw net.ipv4.ip_forward=1
  write_state "$dir"
  trap - EXIT
  echo "lan-sim: $name up: $hosts hosts (${addrs[*]}), rates ${rates[*]}; state in $dir"
}

load() {
  check_name "$1"
  dir=$state_root/$1
  [ -f "$dir/env" ] || die "no sim named $1 is up (no $dir/env)"
  # shellcheck disable=SC1091
  . "$dir/env"
}

cmd_run() {
  [ $# -ge 2 ] && [ "$2" = "--" ] || usage "run takes NAME -- MPIRUN-ARGS..."
  load "$1"
  shift 2
  local bind=()
  # Pinned hosts: Open MPI must not bind ranks itself, or it would undo the host's CPU set.
  [ -z "${LAN_SIM_CPUS// /}" ] || bind=(--bind-to none)
  # The sim needs root, and Open MPI refuses root unless told that it is deliberate.
  [ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  exec "${MPIRUN:-mpirun}" --hostfile "$LAN_SIM_HOSTFILE" --mca plm_rsh_agent "$LAN_SIM_AGENT" \
    --mca plm_rsh_no_tree_spawn 1 --mca pml ob1 --mca osc '^ucx' --mca btl tcp,self \
    --mca btl_tcp_if_include "$prefix.0.0/16" --mca oob_tcp_if_include "$LAN_SIM_SUBNETS" \
    "${bind[@]}" "$@"
}

cmd_exec() {
  [ $# -ge 3 ] && [ "$3" = "--" ] || usage "exec takes NAME HOST -- COMMAND..."
  load "$1"
  local host=$2 ns cpu
  shift 3
  [[ $host =~ ^[0-9]+$ ]] && [ "$host" -lt "$LAN_SIM_HOSTS" ] || usage "HOST must be 0..$((LAN_SIM_HOSTS - 1))"
  read -r -a ns <<<"$LAN_SIM_NETNS"
  cpu=$(awk -v i="$((host + 1))" '{print $i}' <<<"$LAN_SIM_CPUS")
  if [ -n "$cpu" ]; then
    exec ip netns exec "${ns[host]}" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
      "${ns[host]}" taskset -c "$cpu" "$@"
  fi
  exec ip netns exec "${ns[host]}" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
    "${ns[host]}" "$@"
}

# Bytes through each host's link, seen from the host: tx_bytes left it, rx_bytes entered it
# (the root end's counters, swapped; they include Ethernet headers, not the preamble).
cmd_counters() {
  [ $# -eq 1 ] || usage "counters takes NAME"
  load "$1"
  local i=0 k rx tx sep=""
  printf '{"name": "%s", "hosts": [' "$LAN_SIM_NAME"
  while read -r k; do
    rx=$(cat "/sys/class/net/hlan$k/statistics/tx_bytes")
    tx=$(cat "/sys/class/net/hlan$k/statistics/rx_bytes")
    printf '%s{"host": %d, "veth": "hlan%s", "tx_bytes": %s, "rx_bytes": %s}' "$sep" "$i" "$k" "$tx" "$rx"
    sep=", "
    i=$((i + 1))
  done <"$dir/subnets"
  printf ']}\n'
}

[ $# -ge 1 ] || usage "no command"
command=$1
shift
case $command in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  run) cmd_run "$@" ;;
  exec) cmd_exec "$@" ;;
  counters) cmd_counters "$@" ;;
  env)
    [ $# -eq 1 ] || usage "env takes NAME"
    load "$1"
    echo "$dir/env"
    ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) usage "unknown command '$command' (up, run, exec, counters, env, down)" ;;
esac
