"""``python -m harness.plugin --help``: Locust's ``--help`` with the harness's flags in it.

Locust prints ``--help`` before it imports a locustfile, so ``locust -f locustfiles/mixed.py --help`` lists
Locust's own flags only (the plugin registers its flags when the locustfile imports ``harness``). This builds
Locust's own parser with the plugin loaded and prints its help. Given flags instead, it checks them the way a run
would (one line and exit 2 for a bad value) without starting anything.
"""

from __future__ import annotations

import sys

from locust.argument_parser import get_parser

import harness.plugin  # noqa: F401  (registers the plugin's flags with Locust's parser)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    parser = get_parser()
    parser.prog = "locust"
    parser.parse_args(args or ["--help"])
    sys.stderr.write("the flags are valid\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
