#!/usr/bin/env python3
"""Writes the data-category keys of fideslang's default taxonomy, one per line, sorted.

Produces tests/data/fideslang-3.1.4-data-categories.txt, which tests/fideslang.rs reads to check
the built-in categories' fideslang keys. Run by hand, never by the tests (they need no Python):

    python3 -m venv /tmp/fides-venv
    /tmp/fides-venv/bin/pip install fideslang==3.1.4
    /tmp/fides-venv/bin/python tests/data/fideslang-keys.py \
        > tests/data/fideslang-3.1.4-data-categories.txt

It refuses any other fideslang version than the one the file is named for.
"""

import sys

import fideslang
from fideslang.default_taxonomy import DEFAULT_TAXONOMY

VERSION = "3.1.4"
# The sha256 of the wheel the committed list was made from (recorded, not checked: an installed
# package no longer has its wheel).
WHEEL_SHA256 = "679dc7f4ca93257b3e5e94d98b39f47976eb9eca8fefc10d47e4282475bcee38"

HEADER = f"""\
# The data-category keys (`fides_key`) of fideslang {VERSION}'s default taxonomy, one per line,
# sorted. Read by tests/fideslang.rs; lines starting with `#` and blank lines are comments.
#
# Source: the fideslang {VERSION} package from PyPI, wheel fideslang-{VERSION}-py3-none-any.whl
# (sha256 {WHEEL_SHA256}),
# module fideslang.default_taxonomy, DEFAULT_TAXONOMY.data_category (deprecated keys included,
# marked below if any). Produced by tests/data/fideslang-keys.py:
#
#   python3 -m venv /tmp/fides-venv
#   /tmp/fides-venv/bin/pip install fideslang=={VERSION}
#   /tmp/fides-venv/bin/python tests/data/fideslang-keys.py \\
#       > tests/data/fideslang-{VERSION}-data-categories.txt
"""


def main() -> int:
    if fideslang.__version__ != VERSION:
        print(
            f"fideslang {fideslang.__version__} is installed; this list is for {VERSION}",
            file=sys.stderr,
        )
        return 1
    categories = DEFAULT_TAXONOMY.data_category
    keys = sorted(c.fides_key for c in categories)
    if len(keys) != len(set(keys)):
        print("the taxonomy names a key twice", file=sys.stderr)
        return 1
    deprecated = sorted(c.fides_key for c in categories if c.version_deprecated)
    sys.stdout.write(HEADER)
    for key in deprecated:
        sys.stdout.write(f"# deprecated: {key}\n")
    sys.stdout.write(f"# {len(keys)} keys\n")
    for key in keys:
        sys.stdout.write(key + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
