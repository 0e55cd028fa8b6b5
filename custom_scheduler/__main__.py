"""The command line: `custom-scheduler run` and `custom-scheduler plan`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m custom_scheduler`."""
    print("custom-scheduler: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
