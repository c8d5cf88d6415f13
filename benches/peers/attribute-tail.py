#!/usr/bin/env python3
"""Splits the binding's mean above its p50 by what the scheduler did during each call.

Usage: attribute-tail.py CALLS.json SCHED.txt (see latency-trace.js for how to make them).

A call is put in the first class that matches the scheduler events inside it:
  epoch ticker        the engine's epoch ticker thread ran (woke or was switched to);
  one CPU             the JavaScript thread and a runtime worker preempted each other on one CPU;
  other switches      any other switch or wake-up;
  no switch           none: the time went elsewhere (the host, V8's own work, caches).
Each class's share of the mean is the sum of its calls' time above the p50, over all calls.
"""
import bisect
import collections
import json
import re
import sys

LINE = re.compile(r'\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)')


def events(path):
    found = []
    with open(path) as lines:
        for line in lines:
            match = LINE.match(line)
            if match:
                comm, _tid, _cpu, at, _event, rest = match.groups()
                found.append((float(at) * 1e6, comm, rest))
    found.sort()
    return found


def kind(during):
    if not during:
        return 'no switch'
    if any('nexus-epoch' in comm or 'nexus-epoch' in rest for _, comm, rest in during):
        return 'epoch ticker'
    for _, comm, rest in during:
        if comm == 'node' and 'prev_state=R ==> next_comm=actix' in rest:
            return 'one CPU'
        if comm.startswith('actix') and 'prev_state=R ==> next_comm=node' in rest:
            return 'one CPU'
    return 'other switches'


def main(calls_path, sched_path):
    calls = json.load(open(calls_path))
    found = events(sched_path)
    times = [at for at, _, _ in found]
    took = calls['tookUs']
    p50 = sorted(took)[len(took) // 2]
    count, above = collections.Counter(), collections.Counter()
    for start, duration in zip(calls['startUs'], took):
        begin = calls['t0Us'] + start
        during = found[bisect.bisect_left(times, begin) : bisect.bisect_right(times, begin + duration)]
        name = kind(during)
        count[name] += 1
        above[name] += max(0.0, duration - p50)
    mean = sum(took) / len(took)
    print(f'{len(took)} calls: p50 {p50:.1f} us, mean {mean:.1f} us ({mean - p50:.1f} above the p50)')
    for name in ('epoch ticker', 'one CPU', 'other switches', 'no switch'):
        print(f'  {name:16s} {count[name]:5d} calls, {above[name] / len(took):5.2f} us of the mean')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
