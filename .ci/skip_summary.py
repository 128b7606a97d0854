"""Print the skipped tests of a pytest JUnit XML report per directory, and
exit 1 when a directory that must never skip in CI did (issue 20: a test
family that vanishes from a green run is a failure).

Usage: python .ci/skip_summary.py REPORT.xml [NO_SKIP_DIR ...]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter


def directory(classname: str) -> str:
    """``tests.differential.test_diff_ttl`` -> ``tests/differential``."""
    parts = classname.split(".")
    modules = [p for p in parts if p.startswith("test_")]
    cut = parts.index(modules[0]) if modules else len(parts)
    return "/".join(parts[:cut]) or "."


def main(report: str, *no_skip: str) -> int:
    skipped: Counter[str] = Counter()
    ran: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        where = directory(case.get("classname", ""))
        ran[where] += 1
        skip = case.find("skipped")
        if skip is not None:
            skipped[where] += 1
            reasons.setdefault(where, Counter())[(skip.get("message") or "")[:160]] += 1
    print("\n== skipped tests per directory ==")
    for where in sorted(ran):
        print(f"{where:32} {skipped[where]:4} skipped of {ran[where]}")
        for reason, count in reasons.get(where, Counter()).most_common(5):
            print(f"{'':36}{count} x {reason}")
    bad = [where for where in no_skip if skipped[where] or not ran[where]]
    for where in bad:
        print(f"FAILED: {where} must run every test in CI: {skipped[where]} skipped, {ran[where]} collected",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
