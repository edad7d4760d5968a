#!/usr/bin/python3
"""The figures of bench/lan.sh from its work folder: per run, medians and spread, the goals.

usage: lan_report.py WORK REPEATS ROUNDS SAMPLES GLOBAL_BATCH RESULTS QUICK

Reads WORK/calib.*, WORK/hetrainN.* (summary, metrics, counters) and WORK/ddpN.* (rank 0's JSON,
counters); writes RESULTS.json and RESULTS.md and prints the table. Exit 1 when a run's result is
malformed (missing figures, wrong sample count, non-positive speed); a missed goal is reported,
not an error.
"""
import datetime
import json
import statistics
import sys

import benchstats

LINK_BYTES_PER_S = 125e6  # 1 Gbit/s of frames: what tbf shapes and the counters count


def moved(work, tag):
    """{(host, 'tx_bytes'|'rx_bytes'): bytes} during run TAG, from the sim's counters."""
    before = json.load(open(f"{work}/{tag}.before.json"))["hosts"]
    after = json.load(open(f"{work}/{tag}.after.json"))["hosts"]
    return {(b["host"], d): a[d] - b[d] for b, a in zip(before, after)
            for d in ("tx_bytes", "rx_bytes")}


def check(cond, what, problems):
    if not cond:
        problems.append(what)


def hetrain_run(work, tag, rounds, samples, calib, problems):
    s = json.load(open(f"{work}/{tag}.summary.json"))
    records = [json.loads(l) for l in open(f"{work}/{tag}.metrics.jsonl")]
    round_records = [r for r in records if r.get("type") == "round"]
    check(s.get("samples") == samples, f"{tag}: {s.get('samples')} samples, expected {samples}",
          problems)
    check(len(round_records) == rounds, f"{tag}: {len(round_records)} round records, expected "
          f"{rounds}", problems)
    check(s.get("samples_per_sec", 0) > 0, f"{tag}: no samples/s", problems)
    check(0 <= s.get("test_accuracy", -1) <= 1, f"{tag}: no test accuracy", problems)
    # Communication (and aggregation) a round: its time minus its slowest trainer's compute and
    # data wait. Rounds 1-2 warm up (first allocations, the first plan), so from round 3 on.
    comm = []
    for r in round_records[2:] or round_records:
        busy = [t["compute_seconds"] + t["data_wait_seconds"] for t in r["trainers"]
                if t["samples"] > 0]
        comm.append(r["seconds"] - max(busy))
    full, short = moved(work, tag), moved(work, "calib")
    per_round = {k: (full[k] - short[k]) / (rounds - 2) for k in full} if rounds > 2 else {}
    busiest = max(per_round, key=per_round.get) if per_round else None
    speeds = {t["rank"]: t["samples"] / t["compute_seconds"] for t in s["trainers"]
              if t["compute_seconds"] > 0}
    return {"tool": "hetrain", "tag": tag, "samples_per_sec": s["samples_per_sec"],
            "test_accuracy": s["test_accuracy"], "test_loss": s["test_loss"],
            "final_train_loss": s["final_train_loss"],
            "shares": {t["rank"]: t["share"] for t in s["trainers"]},
            "trainer_samples_per_compute_second": speeds,
            "plan_history": s.get("plan_history", []),
            "comm_seconds_per_round": statistics.median(comm),
            "busiest_link_bytes_per_round": per_round[busiest] if busiest else None,
            "busiest_link": f"host {busiest[0]} {busiest[1][:2]}" if busiest else None}


def ddp_run(work, tag, rounds, samples, problems):
    d = json.loads(open(f"{work}/{tag}.json").read())
    check(d.get("samples") == samples, f"{tag}: {d.get('samples')} samples, expected {samples}",
          problems)
    check(d.get("samples_per_sec", 0) > 0, f"{tag}: no samples/s", problems)
    check(0 <= d.get("test_accuracy", -1) <= 1, f"{tag}: no test accuracy", problems)
    total = moved(work, tag)
    busiest = max(total, key=total.get)
    return {"tool": "ddp", "tag": tag, "samples_per_sec": d["samples_per_sec"],
            "test_accuracy": d["test_accuracy"], "test_loss": d["test_loss"],
            "final_train_loss": d["final_train_loss"],
            "busiest_link_bytes_per_round_with_startup": total[busiest] / rounds,
            "busiest_link": f"host {busiest[0]} {busiest[1][:2]}"}


def goals(h, d, hetrain_runs):
    ratio = h["samples_per_sec"]["median"] / d["samples_per_sec"]["median"]
    acc_diff = h["test_accuracy"]["median"] - d["test_accuracy"]["median"]
    comm = h["comm_seconds_per_round"]["median"]
    per_round = [r["busiest_link_bytes_per_round"] for r in hetrain_runs
                 if r["busiest_link_bytes_per_round"] is not None]
    bound = statistics.median(per_round) / LINK_BYTES_PER_S if per_round else None
    return {
        "speed": {"goal": "hetrain >= 1.3 x DDP samples/s", "ratio": ratio, "met": ratio >= 1.3},
        "accuracy": {"goal": "hetrain's test accuracy >= DDP's (within 0.01: 10 of 1000 test "
                             "samples, the runs' spread)",
                     "hetrain_minus_ddp": acc_diff, "met": acc_diff >= -0.01},
        "communication": {"goal": "hetrain's communication time a round <= 1.5 x bound (busiest "
                                  "link bytes a round / 125 MB/s)",
                          "seconds": comm, "bound_seconds": bound,
                          "ratio": comm / bound if bound else None,
                          "met": bool(bound) and comm <= 1.5 * bound},
    }


def markdown(res):
    g, s = res["goals"], res["summary"]
    def cell(tool, key, digits):
        v = s[tool].get(key)
        return f"{v['median']:.{digits}f} [{v['min']:.{digits}f}-{v['max']:.{digits}f}]" if v else "-"
    lines = [f"# hetrain vs PyTorch DDP on a simulated LAN ({res['date']})", "",
             f"3 hosts (network namespaces), 1 Gbit/s links (tbf); CPUs {res['cpus']} (2:1:1); "
             f"torchvision ResNet-18, 3x32x32, 10 classes; {res['samples']} samples, global batch "
             f"{res['global_batch']}, micro-batch 32, Adam 1e-3. hetrain: --aggregators 3 "
             f"co-located (--map-by node), benchmark shares, --overlap. Medians of "
             f"{res['repeats']} interleaved runs [min-max].", "",
             "| run | samples/s | test accuracy | test loss | comm s/round |",
             "|---|---|---|---|---|"]
    for tool in ("hetrain", "ddp"):
        lines.append(f"| {tool} | {cell(tool, 'samples_per_sec', 1)} | "
                     f"{cell(tool, 'test_accuracy', 3)} | {cell(tool, 'test_loss', 3)} | "
                     f"{cell(tool, 'comm_seconds_per_round', 3) if tool == 'hetrain' else '-'} |")
    lines += ["", "| goal | measured | met |", "|---|---|---|",
              f"| {g['speed']['goal']} | {g['speed']['ratio']:.2f}x | {g['speed']['met']} |",
              f"| {g['accuracy']['goal']} | {g['accuracy']['hetrain_minus_ddp']:+.3f} | "
              f"{g['accuracy']['met']} |"]
    c = g["communication"]
    if c["bound_seconds"]:
        lines.append(f"| {c['goal']} | {c['seconds']:.3f} s vs {c['bound_seconds']:.3f} s "
                     f"({c['ratio']:.2f}x) | {c['met']} |")
    lines += ["", f"Compute asymmetry measured (trainer samples per compute second, host 0 / "
                  f"mean of hosts 1-2): {res['asymmetry']:.2f}" if res["asymmetry"] else "",
              f"Busiest link bytes a round: hetrain {res['hetrain_busiest_bytes_per_round']}, "
              f"DDP (startup included) {res['ddp_busiest_bytes_per_round_with_startup']}."]
    return "\n".join(lines) + "\n"


def main():
    work, repeats, rounds, samples, global_batch, results, quick = sys.argv[1:8]
    repeats, rounds, samples = int(repeats), int(rounds), int(samples)
    problems = []
    runs = []
    for r in range(1, repeats + 1):
        runs.append(hetrain_run(work, f"hetrain{r}", rounds, samples, "calib", problems))
        runs.append(ddp_run(work, f"ddp{r}", rounds, samples, problems))
    keys = ("samples_per_sec", "test_accuracy", "test_loss", "final_train_loss",
            "comm_seconds_per_round")
    summary = {tool: {k: benchstats.summary(benchstats.pick(runs, k, tool=tool))
                      for k in keys if all(k in r for r in runs if r["tool"] == tool)}
               for tool in ("hetrain", "ddp")}
    hetrain_runs = [r for r in runs if r["tool"] == "hetrain"]
    # trainer ranks 3, 4, 5 sit on hosts 0, 1, 2 (--map-by node, 3 aggregators)
    ratios = [sp[3] / ((sp[4] + sp[5]) / 2) for sp in
              (r["trainer_samples_per_compute_second"] for r in hetrain_runs)
              if all(k in sp for k in (3, 4, 5))]
    res = {"date": datetime.date.today().isoformat(), "quick": quick == "1", "repeats": repeats,
           "samples": samples, "rounds": rounds, "global_batch": int(global_batch),
           "cpus": "host 0: CPU 0; hosts 1, 2: CPU 1", "runs": runs, "summary": summary,
           "asymmetry": statistics.median(ratios) if ratios else None,
           "hetrain_busiest_bytes_per_round": statistics.median(
               [r["busiest_link_bytes_per_round"] for r in hetrain_runs
                if r["busiest_link_bytes_per_round"] is not None] or [0]),
           "ddp_busiest_bytes_per_round_with_startup": statistics.median(
               [r["busiest_link_bytes_per_round_with_startup"] for r in runs
                if r["tool"] == "ddp"]),
           "problems": problems}
    res["goals"] = goals(summary["hetrain"], summary["ddp"], hetrain_runs)
    json.dump(res, open(results + ".json", "w"), indent=2, default=str)
    md = markdown(res)
    open(results + ".md", "w").write(md)
    print(md)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, default=str))
    for p in problems:
        print("MALFORMED:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
