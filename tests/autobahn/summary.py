"""Summarises a kosoku/Autobahn index.json: counts per behaviour, the cases that are not OK.

Exit status 1 when any case FAILED or was UNIMPLEMENTED, or when the report holds no case.
"""
import collections
import json
import sys

with open(sys.argv[1]) as f:
    index = json.load(f)
cases = {case: result for agent in index.values() for case, result in agent.items()}
counts = collections.Counter(result["behavior"] for result in cases.values())
print(f"autobahn: {len(cases)} cases: " + ", ".join(f"{n} {b}" for b, n in sorted(counts.items())))


def case_key(case):
    return [int(part) for part in case.split(".")]


for case in sorted(cases, key=case_key):
    result = cases[case]
    if result["behavior"] != "OK" or result.get("behaviorClose") not in ("OK", None):
        print(f"  {case}: {result['behavior']} (close: {result.get('behaviorClose')})")
bad = counts["FAILED"] + counts["UNIMPLEMENTED"]
sys.exit(1 if bad or not cases else 0)
