"""Check a ledger evidence bundle: `python -m shared.ledger.verify BUNDLE.json [--public-key B64]`.

Prints `valid: N entries in M chains, signed by <key> (ephemeral|configured)`, or the problems
found. Exit status: 0 valid, 1 invalid, 2 the file cannot be read or the usage is wrong.

Without `--public-key` the signature is checked with the key the bundle names: that proves the
bundle unchanged since that key's holder signed it, so compare the printed key with the
deployment's (an ephemeral key is the one a deployment made at start, and is lost on restart).
"""

from __future__ import annotations

import argparse
import json
import sys

from shared.ledger.evidence import verify_bundle


def main(argv: list[str] | None = None) -> int:
    """Run the command on `argv` (default: the process's arguments); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.ledger.verify", description="Check a ledger evidence bundle."
    )
    parser.add_argument("bundle", help="the bundle, a JSON file")
    parser.add_argument(
        "--public-key", help="the signer's Ed25519 public key (base64); default: the bundle's own"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on a usage error (2) and after --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with open(args.bundle, encoding="utf-8") as file:
            bundle = json.load(file)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        print(f"cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    problems = verify_bundle(bundle, public_key=args.public_key)
    if problems:
        print(f"invalid: {_count(len(problems), 'problem')}")
        for problem in problems:
            print(f"  {problem}")
        return 1
    chains = bundle["chains"]
    entries = sum(len(chain["entries"]) for chain in chains)
    signing = bundle["signing"]
    kind = "ephemeral" if signing["ephemeral"] else "configured"
    print(
        f"valid: {_count(entries, 'entry', 'entries')} in {_count(len(chains), 'chain')}, "
        f"signed by {signing['public_key']} ({kind})"
    )
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


if __name__ == "__main__":
    sys.exit(main())
