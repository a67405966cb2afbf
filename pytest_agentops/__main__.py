"""``python -m pytest_agentops gate ...``: the pre-canary gate without the console script."""

import sys

from .gate import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "gate":
        print("usage: python -m pytest_agentops gate REPORT [REPORT ...] [--baseline BASE]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(args[1:]))
