"""Write ``.env`` for docker compose (``make env``): ``.env.example`` with a fresh random value for every password.

The passwords of ``.env.example`` are placeholders that anyone can read, and the Redis entry point refuses to
start with them (deploy/redis/render-acl.sh). This writes each ``*_PASSWORD`` line of the example with 32
random bytes in hex (URL-safe: Redis's passwords travel inside ``REDIS_URL``) and keeps every other line as it
is. An existing ``.env`` is never overwritten unless asked (``--force``, ``make env FORCE=1``): Redis's users
and data were made with its passwords.

    python scripts/make_env.py [--force] [--example .env.example] [--out .env]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = re.compile(r"^([A-Z][A-Z0-9_]*_PASSWORD)=.*$")


def fresh(example: str) -> tuple[str, list[str]]:
    """The example's text with a new random value for each password, and the names of those."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"{match.group(1)}={secrets.token_hex(32)}"

    lines = [PASSWORD.sub(replace, line) for line in example.splitlines()]
    return "\n".join(lines) + "\n", names


def write_private(path: Path, text: str, force: bool) -> None:
    """Write ``text`` readable by its owner only; FileExistsError when ``path`` exists and ``force`` is off."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    with os.fdopen(os.open(path, flags, 0o600), "w") as out:
        out.write(text)
    path.chmod(0o600)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--out", type=Path, default=ROOT / ".env")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file (new passwords)")
    args = parser.parse_args(argv)
    text, names = fresh(args.example.read_text())
    try:
        write_private(args.out, text, args.force)
    except FileExistsError:
        print(f"{args.out} exists: its passwords are the ones Redis was set up with, so it is kept "
              "(make env FORCE=1, or --force, writes new ones)", file=sys.stderr)  # fmt: skip
        return 1
    print(f"wrote {args.out} with fresh random values for {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
