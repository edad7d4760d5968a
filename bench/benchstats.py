"""Summaries of repeated runs, in the shapes every bench/ report writes.

A bench script runs each setting several times, interleaved, on a shared and noisy machine, and
reports the median with the range of the runs. Its python report imports this module (bench/ is on
PYTHONPATH after bench/common.sh, and is the folder of bench/*.py):

  median(values)            the median (statistics.median)
  spread(values)            [min, max]
  summary(values)           {"median", "min", "max", "n"}; with count=False, without "n"
  pick(runs, key, **match)  [run[key] for each run (a dict) whose fields equal those in match]
"""
import statistics


def median(values):
    return statistics.median(values)


def spread(values):
    v = list(values)
    return [min(v), max(v)]


def summary(values, count=True):
    v = list(values)
    s = {"median": statistics.median(v), "min": min(v), "max": max(v)}
    if count:
        s["n"] = len(v)
    return s


def pick(runs, key, **match):
    return [r[key] for r in runs if all(r[k] == x for k, x in match.items())]
