#!/usr/bin/env python3
"""Where a V8 .cpuprofile (node --cpu-prof) spent its time, per function (name and location), largest first:
self time (samples that hit the function itself), and with --total the time under it too (counted once per
sample however often the function recurses on its stack).
  python3 bench/lib/cpuprofile-top.py /tmp/prof/CPU.<...>.0.001.cpuprofile [top=30] [--total]"""
import json
import sys
from collections import defaultdict

args = [a for a in sys.argv[1:] if not a.startswith('--')]
total_mode = '--total' in sys.argv
prof = json.load(open(args[0]))
top = int(args[1]) if len(args) > 1 else 30
nodes = {n['id']: n for n in prof['nodes']}
parent = {}
for n in prof['nodes']:
    for c in n.get('children', []):
        parent[c] = n['id']
times = prof.get('timeDeltas') or []
samples = prof.get('samples') or []


def key_of(node_id):
    cf = nodes[node_id]['callFrame']
    url = cf.get('url', '').split('/')[-1] or '(native)'
    return f"{cf.get('functionName') or '(anonymous)'} {url}:{cf.get('lineNumber', -1) + 1}"


by_fn = defaultdict(float)
all_us = 0.0
# A sample's time is the delta to the next sample (as V8's own tools count it).
for i, node_id in enumerate(samples):
    dt = times[i + 1] if i + 1 < len(times) else 0
    all_us += dt
    if not total_mode:
        by_fn[key_of(node_id)] += dt
        continue
    seen = set()
    n = node_id
    while n is not None:
        k = key_of(n)
        if k not in seen:
            seen.add(k)
            by_fn[k] += dt
        n = parent.get(n)
print(f"{all_us / 1e6:.2f} s sampled ({'total' if total_mode else 'self'} time per function)")
for key, us in sorted(by_fn.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{us / 1e3:9.0f} ms {100 * us / all_us:5.1f}%  {key}")
