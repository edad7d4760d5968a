#!/usr/bin/env bash
# lan.sim: scripts/lan-sim.sh itself. A 2-host sim with a rate, CPUs and slots per host:
#  - up writes the hostfile (one address and its slots per host), an executable agent, env and
#    hosts.json (rates in bit/s); each host has its own address, its own host name (exec runs in
#    the host's UTS namespace) and its CPU set;
#  - tc shows tbf at the host's rate on both ends of each link;
#  - counters is JSON with a host's bytes, and bytes sent from host 0 to host 1 show up as host
#    0's tx and host 1's rx;
#  - a second up with the same name fails and leaves the first sim working; bad usage is exit 2;
#  - down removes the namespaces, the root-side links and the state directory, and a second down
#    is harmless.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
sim_up 2 1gbit,50mbit --cpus 0,0 --slots 1,2
state=/run/hetrain-lan/$sim
for f in hostfile agent env hosts.json; do [ -s "$state/$f" ] || fail "up wrote no $state/$f"; done
[ -x "$state/agent" ] || fail "the agent is not executable"
# shellcheck disable=SC1091
. "$state/env"
read -r -a addrs <<<"$LAN_SIM_ADDRS"
[ "$(cat "$state/hostfile")" = "${addrs[0]} slots=1
${addrs[1]} slots=2" ] || fail "hostfile: $(cat "$state/hostfile")"
for h in 0 1; do
  out=$("$lan_sim" exec "$sim" "$h" -- sh -c 'hostname; ip -4 -o addr show scope global; grep Cpus_allowed_list /proc/self/status')
  echo "host $h: $(echo "$out" | tr -s ' \n' ' ' | cut -c1-150)"
  echo "$out" | grep -qx "$sim-h$h" || fail "host $h is not named $sim-h$h"
  echo "$out" | grep -q "inet ${addrs[h]}/24" || fail "host $h has not its address ${addrs[h]}"
  echo "$out" | grep -qE "Cpus_allowed_list:\s+0$" || fail "host $h is not pinned to CPU 0"
done
$py - "$state/hosts.json" <<'PY'
import json, sys
hosts = json.load(open(sys.argv[1]))["hosts"]
assert [h["rate_bits"] for h in hosts] == [1000000000, 50000000], hosts
PY
for h in 0 1; do
  veth=hlan$(sed -n "$((h + 1))p" "$state/subnets")
  rate=$(echo "$LAN_SIM_RATES" | awk -v i=$((h + 1)) '{print $i}')
  want=$(echo "$rate" | sed 's/gbit/Gbit/; s/mbit/Mbit/')
  tc qdisc show dev "$veth" | grep -q "tbf .*rate $want" || fail "$veth: $(tc qdisc show dev "$veth")"
  ip netns exec "$sim-h$h" tc qdisc show dev "${veth}p" | grep -q "tbf .*rate $want" ||
    fail "${veth}p: not shaped at $want"
done
# 1 MB from host 0 to host 1 (bash's /dev/tcp, a listener made with python on host 1).
counters "$work/before.json"
"$lan_sim" exec "$sim" 1 -- "$py" -c '
import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5999)); s.listen(1); c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)' >"$work/received" &
listener=$!
for _ in $(seq 50); do
  "$lan_sim" exec "$sim" 0 -- bash -c "head -c 1000000 /dev/zero >/dev/tcp/${addrs[1]}/5999" \
    2>/dev/null && break
  sleep 0.1
done
wait "$listener"
counters "$work/after.json"
[ "$(cat "$work/received")" = 1000000 ] || fail "host 1 received $(cat "$work/received") bytes"
$py - "$work/before.json" "$work/after.json" <<'PY'
import json, sys
b, a = (json.load(open(p))["hosts"] for p in sys.argv[1:3])
sent = a[0]["tx_bytes"] - b[0]["tx_bytes"]
got = a[1]["rx_bytes"] - b[1]["rx_bytes"]
print(f"1 MB from host 0 to host 1: host 0 tx {sent}, host 1 rx {got}")
assert 1e6 <= sent < 1.1e6 and 1e6 <= got < 1.1e6, (sent, got)
PY
rc=0
"$lan_sim" up "$sim" --hosts 1 --rate 1gbit 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "a second up with the same name gave exit $rc, expected 1"
"$lan_sim" exec "$sim" 1 -- true || fail "the second up broke the first sim"
for bad in "--hosts 2 --rate 1gbit,1gbit,1gbit" "--hosts 0 --rate 1gbit" "--hosts 1 --rate fast" \
  "--hosts 2 --rate 1gbit --cpus 0" "--hosts 1"; do
  rc=0
  # shellcheck disable=SC2086  # the options are word lists on purpose
  "$lan_sim" up "${sim}b" $bad 2>/dev/null || rc=$?
  [ "$rc" -eq 2 ] || fail "up $bad gave exit $rc, expected 2"
done
mapfile -t subnets <"$state/subnets"
"$lan_sim" down "$sim"
"$lan_sim" down "$sim" >/dev/null
! ip netns list | grep -q "^$sim-h" || fail "down left namespaces: $(ip netns list)"
for k in "${subnets[@]}"; do
  ! ip link show "hlan$k" >/dev/null 2>&1 || fail "down left hlan$k"
done
[ ! -e "$state" ] || fail "down left $state"
echo "down removed the namespaces, links and $state"
