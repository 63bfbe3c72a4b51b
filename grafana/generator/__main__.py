"""Write the dashboards to grafana/dashboards/, or with --check only say which files are stale."""
from __future__ import annotations

import argparse
import sys

from . import OUTPUT, generate, stale


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generator", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files that differ from the code")
    if parser.parse_args().check:
        differ = stale()
        for path in differ:
            print(f"grafana/dashboards/{path} differs from what grafana/generator generates",
                  file=sys.stderr)
        if differ:
            print("run ./scripts/dashboards and commit the result", file=sys.stderr)
        return 1 if differ else 0
    for path, text in generate().items():
        target = OUTPUT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
