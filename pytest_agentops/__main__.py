"""``python -m pytest_agentops gate|plan|compare ...``: the command lines without the console scripts."""

import sys

if __name__ == "__main__":
    args = sys.argv[1:]
    commands = ("gate", "plan", "compare")
    if not args or args[0] not in commands:
        print("usage: python -m pytest_agentops gate REPORT [REPORT ...] [--baseline BASE]\n"
              "       python -m pytest_agentops plan --threshold T --rate R [--fail-level F] [--trials N]\n"
              "       python -m pytest_agentops compare BASELINE CANDIDATE [--trials N] [--seed S]", file=sys.stderr)
        raise SystemExit(2)
    if args[0] == "gate":
        from .gate import main
    elif args[0] == "plan":
        from .cli import plan_main as main
    else:
        from .cli import compare_main as main
    raise SystemExit(main(args[1:]))
