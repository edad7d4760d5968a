#!/usr/bin/env bash
# Slow links (issue 25): time to a target test accuracy and bytes per sample over the busiest
# link for each sync mode, on a simulated LAN (scripts/lan-sim.sh, root) of 3 hosts with a 2:1
# compute asymmetry made by CPU cgroup quotas (docs/benchmarks.md "Unequal machines on one
# host"): host 0 rank 0 (40% of CPU 0), host 1 a trainer on all of CPU 1, host 2 a trainer at 50%
# of CPU 0. The cnn on Fashion-MNIST, SAMPLES (15360) samples, EPOCHS (3) epochs, global batch
# 256, Adam 1e-3, test accuracy after every epoch. Modes: exact (--sync gradient), params
# (--sync params --local-steps 8), diloco (--sync diloco --local-steps 8, Nesterov 0.7/0.9),
# diloco-int8 (the same with --wire-dtype int8), diloco-overlap and diloco-overlap-int8 (the
# two with --sync-overlap), and on request (MODES) diloco-overlap-m05 (--outer-momentum 0.5) and
# diloco-overlap-avg (--outer-optimizer average) with --sync-overlap, and diloco-overlap-t2,
# -t4 and -t4-int8 (--sync-overlap-steps 2 or 4: the sync applied before local step 3 or 5),
# diloco-l32-int8 and -l64-int8 (--local-steps 32 or 64 with int8: fewer bytes), and
# ddp: PyTorch DDP (bench/ddp_reference.py, gloo, the same cnn, batch, optimizer and data, an even
# split of every batch) on the two trainer hosts, each pinned as hetrain's trainer there; host 0
# (hetrain's aggregator) idles.
# RUNS runs of each at each rate in RATES ("100mbit 1gbit"), of each mode
# in MODES (all of them; exact must be among them), interleaved. The target is the exact runs' median final accuracy minus 1
# point; a run's time to it is the training time (evaluation excluded) at the end of the first
# epoch whose test accuracy reaches it. Prints and writes JSON; exits 1 when a run fails.
#   bench/slow-links.sh [RUNS=2] [OUT=bench/results/slow-links-DATE.json]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
runs=${1:-2}
out=${2:-bench/results/slow-links-$(date +%F).json}
samples=${SAMPLES:-15360}
epochs=${EPOCHS:-3}
rates=${RATES:-100mbit 1gbit}
[ -x "$hetrain" ] || { echo "no $hetrain: run scripts/build.sh first" >&2; exit 2; }
[ -f data/fashion-mnist-train.h5 ] || { echo "no data: run scripts/prepare-data.sh" >&2; exit 2; }
[ -w "$cg" ] || { echo "no writable cgroup v1 cpu controller at $cg" >&2; exit 77; }
work=$(mktemp -d)
sim=
cleanup() {
  [ -z "$sim" ] || scripts/lan-sim.sh down "$sim" >/dev/null 2>&1
  cgroups_down
  rm -rf "$work"
}
trap cleanup EXIT
cgroups_up sl_rank0 sl_slow
cgroup_quota sl_rank0 4000
cgroup_quota sl_slow 5000
cgroup_placement "$work/place.sh" 0:sl_rank0:0 1:-:1 2:sl_slow:0
a=(--data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5 --model cnn
   --epochs "$epochs" --global-batch 256 --micro-batch 32 --optimizer adam --lr 1e-3 --seed 4
   --threads 1 --limit-train-samples "$samples" --progress-seconds 1000 --straggler-timeout 600)
read -r -a modes <<<"${MODES:-exact params diloco diloco-int8 diloco-overlap diloco-overlap-int8}"
declare -A flags=([exact]="--sync gradient" [params]="--sync params --local-steps 8"
                  [diloco]="--sync diloco --local-steps 8"
                  [diloco-int8]="--sync diloco --local-steps 8 --wire-dtype int8"
                  [diloco-overlap]="--sync diloco --local-steps 8 --sync-overlap"
                  [diloco-overlap-int8]="--sync diloco --local-steps 8 --sync-overlap --wire-dtype int8"
                  [diloco-overlap-m05]="--sync diloco --local-steps 8 --sync-overlap --outer-momentum 0.5"
                  [diloco-overlap-avg]="--sync diloco --local-steps 8 --sync-overlap --outer-optimizer average"
                  [diloco-overlap-t2]="--sync diloco --local-steps 8 --sync-overlap --sync-overlap-steps 2"
                  [diloco-overlap-t4]="--sync diloco --local-steps 8 --sync-overlap --sync-overlap-steps 4"
                  [diloco-overlap-t4-int8]="--sync diloco --local-steps 8 --sync-overlap --sync-overlap-steps 4 --wire-dtype int8"
                  [diloco-l32-int8]="--sync diloco --local-steps 32 --wire-dtype int8"
                  [diloco-l64-int8]="--sync diloco --local-steps 64 --wire-dtype int8")
py=$(bench_python torch h5py)
# run_ddp TAG: DDP rank r on host r + 1 in its namespace, pinned (and capped) as hetrain's
# trainer there; rank 0's JSON (with a per-epoch history) in $work/TAG.json.
run_ddp() {
  local tag=$1 r pids=() port=$((29500 + RANDOM % 1000)) env_file veths
  env_file=$(scripts/lan-sim.sh env "$sim")
  # shellcheck disable=SC1090
  . "$env_file"
  read -r -a addrs <<<"$LAN_SIM_ADDRS"
  mapfile -t veths < <("$py" -c 'import json,sys; [print(h["veth"] + "p") for h in json.load(open(sys.argv[1]))["hosts"]]' "$LAN_SIM_DIR/hosts.json")
  for r in 0 1; do
    scripts/lan-sim.sh exec "$sim" $((r + 1)) -- env RANK=$r WORLD_SIZE=2 MASTER_ADDR="${addrs[1]}" \
      MASTER_PORT=$port GLOO_SOCKET_IFNAME="${veths[r + 1]}" OMPI_COMM_WORLD_RANK=$((r + 1)) \
      "$work/place.sh" "$py" bench/ddp_reference.py --data data/fashion-mnist-train.h5 \
      --test-data data/fashion-mnist-test.h5 --model cnn --epochs "$epochs" --samples "$samples" \
      --global-batch 256 --micro-batch 32 --lr 1e-3 --seed 4 >"$work/$tag.$r.out" 2>"$work/$tag.$r.err" &
    pids+=($!)
  done
  for r in 0 1; do
    wait "${pids[r]}" || { tail -n 20 "$work/$tag".*.err >&2; exit 1; }
  done
  tail -n 1 "$work/$tag.0.out" >"$work/$tag.json"
}
for rate in $rates; do
  sim=sl$$
  scripts/lan-sim.sh up "$sim" --hosts 3 --rate "$rate" --slots 1 >/dev/null
  for k in $(seq "$runs"); do
    for m in "${modes[@]}"; do
      tag=$rate-$m-$k
      scripts/lan-sim.sh counters "$sim" >"$work/$tag.before.json"
      if [ "$m" = ddp ]; then
        run_ddp "$tag"
      else
        # shellcheck disable=SC2086 # flags hold several words
        scripts/lan-sim.sh run "$sim" -- --oversubscribe -np 3 --map-by node \
          --mca mpi_yield_when_idle 1 "$work/place.sh" "$hetrain" train "${a[@]}" ${flags[$m]} \
          --checkpoint-dir "$work/ckpt-$tag" --summary-json "$work/$tag.json" >"$work/$tag.log" 2>&1 ||
          { tail -n 20 "$work/$tag.log" >&2; exit 1; }
      fi
      scripts/lan-sim.sh counters "$sim" >"$work/$tag.after.json"
      rm -rf "$work/ckpt-$tag"
      echo "$rate $m run $k: $(json_get "$work/$tag.json" 'round(d["samples_per_sec"])') samples/s," \
        "test accuracy by epoch $(json_get "$work/$tag.json" '[round(e["test_accuracy"], 4) for e in d["history"]]')"
    done
  done
  scripts/lan-sim.sh down "$sim" >/dev/null
  sim=
done
"$py" - "$work" "$runs" "$out" "$samples" "$epochs" "$rates" "${modes[*]}" <<'PY'
import json, statistics, sys
work, runs, out, samples, epochs, rates = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].split()
modes = sys.argv[7].split()
result = {"machine": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].split(":", 1)[1].strip(),
          "layout": "3 hosts: rank 0 (40% of CPU 0), a trainer on CPU 1, a trainer at 50% of "
                    "CPU 0; cnn, global batch 256, Adam 1e-3",
          "samples": samples, "epochs": epochs, "runs": runs, "rates": {}}
def busiest_bytes(tag):
    before, after = (json.load(open(f"{work}/{tag}.{w}.json")) for w in ("before", "after"))
    def total(c):  # per host: bytes in + out of its link
        return [h["rx_bytes"] + h["tx_bytes"] for h in c["hosts"]]
    return max(a - b for a, b in zip(total(after), total(before)))
failed = False
for rate in rates:
    runs_of = {m: [json.load(open(f"{work}/{rate}-{m}-{k}.json")) for k in range(1, runs + 1)]
               for m in modes}
    target = statistics.median(s["test_accuracy"] for s in runs_of["exact"]) - 0.01
    r = {"target_accuracy": target, "modes": {}}
    for m in modes:
        times, accs, rates_, bps = [], [], [], []
        for k, s in enumerate(runs_of[m], 1):
            elapsed, hit = 0.0, None
            for e in s["history"]:
                elapsed += e["seconds"]
                if hit is None and e["test_accuracy"] >= target:
                    hit = elapsed
            times.append(hit)
            accs.append(s["test_accuracy"])
            rates_.append(s["samples_per_sec"])
            bps.append(busiest_bytes(f"{rate}-{m}-{k}") / (samples * epochs))
        reached = [t for t in times if t is not None]
        r["modes"][m] = {"seconds_to_target": times, "final_test_accuracy": accs,
                         "samples_per_sec": rates_, "busiest_link_bytes_per_sample": bps,
                         "overlapped_rounds": [sum(t.get("overlapped_rounds", 0)
                                                   for t in s.get("trainers", []))
                                               for s in runs_of[m]],
                         "median_seconds_to_target":
                             statistics.median(reached) if len(reached) == len(times) else None,
                         "median_bytes_per_sample": statistics.median(bps)}
    ex = r["modes"]["exact"]
    for m in modes:
        x = r["modes"][m]
        x["time_vs_exact"] = (x["median_seconds_to_target"] / ex["median_seconds_to_target"]
                              if x["median_seconds_to_target"] and ex["median_seconds_to_target"]
                              else None)
        x["bytes_vs_exact"] = x["median_bytes_per_sample"] / ex["median_bytes_per_sample"]
        print(f"{rate} {m}: to {target:.4f} in {x['median_seconds_to_target']} s "
              f"({x['time_vs_exact']} of exact), {x['median_bytes_per_sample']:.0f} B/sample "
              f"over the busiest link ({x['bytes_vs_exact']:.4f} of exact), final accuracy "
              f"{x['final_test_accuracy']}")
    result["rates"][rate] = r
    if ex["median_seconds_to_target"] is None:
        failed = True  # the exact runs must reach their own target
json.dump(result, open(out, "w"), indent=1)
print(f"bench/slow-links: wrote {out}")
sys.exit(1 if failed else 0)
PY
