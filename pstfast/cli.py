"""The ``pstfast`` command line: a few lines per command over the library.

Exit codes: 0 success; 2 bad arguments; 65 bad input (not a PST, corrupt, checksum
mismatch); 75 transient failure (storage, database): retry later; 1 anything else.
Errors print one line, never a traceback (set ``PSTFAST_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import InputError, PstfastError, TransientError, UsageError

EXIT_USAGE = 2
EXIT_INPUT = 65
EXIT_TRANSIENT = 75

Handler = Callable[[argparse.Namespace], int]


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _nonnegative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, got 0")
    return value


# --- commands ---------------------------------------------------------------------------


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import SynthOptions, synth

    options = SynthOptions(
        messages=args.messages,
        seed=args.seed,
        folders=args.folders,
        attachment_rate=args.attachment_rate,
        large_attachment_every=args.large_attachment_every,
        body_kib=args.body_kib,
    )
    result = synth(args.out, options=options, truth=args.truth, damaged=args.damaged)
    print(result.summary())
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_pst

    report = inspect_pst(args.pst, readpst=args.readpst)
    print(report.render())
    return 0


def _cmd_damage(args: argparse.Namespace) -> int:
    from .damage import damage

    for variant in damage(args.pst, args.out_dir, kinds=args.kind):
        print(f"{variant.kind}: {variant.path}  ({variant.description})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``pstfast`` command."""
    parser = argparse.ArgumentParser(
        prog="pstfast",
        description="Fast, staged ingestion of Outlook PST files into PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"pstfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "synth",
        help="write a deterministic synthetic Unicode PST (with an optional ground truth)",
        description="Write a synthetic Unicode PST from a seed: same seed, same bytes.",
    )
    p.add_argument("out", metavar="OUT.pst", help="PST file to write")
    p.add_argument("--messages", type=_nonnegative_int, default=200, help="top-level messages (default 200)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--folders", type=_positive_int, default=None, help="user folders (default: grows with --messages)")
    p.add_argument("--attachment-rate", type=float, default=0.3, help="share of messages with attachments (default 0.3)")
    p.add_argument(
        "--large-attachment-every", type=_nonnegative_int, default=500,
        help="one >1 MB attachment every N messages (0: none; default 500)",
    )
    p.add_argument("--body-kib", type=_nonnegative_int, default=2, help="typical body size in KiB (default 2)")
    p.add_argument("--truth", metavar="OUT.json", help="also write the ground truth as JSON")
    p.add_argument(
        "--damaged", metavar="DIR",
        help="also write damaged variants (truncated, flipped data block, broken B-tree page) into DIR",
    )
    p.set_defaults(handler=_cmd_synth)

    p = sub.add_parser("inspect", help="summarise a PST: folders, messages, attachments (via libpff)")
    p.add_argument("pst", help="PST file")
    p.add_argument("--readpst", action="store_true", help="cross-check the counts with readpst")
    p.set_defaults(handler=_cmd_inspect)

    p = sub.add_parser("damage", help="derive damaged variants of a good PST for reliability tests")
    p.add_argument("pst", help="a good PST file")
    p.add_argument("out_dir", help="folder to write the variants into")
    p.add_argument(
        "--kind", action="append", choices=["truncated", "flipped_block", "broken_btree"],
        help="variant to write (repeatable; default all)",
    )
    p.set_defaults(handler=_cmd_damage)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pstfast`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("pstfast: interrupted", file=sys.stderr)
        return 130
    except PstfastError as exc:
        if os.environ.get("PSTFAST_DEBUG"):
            raise
        print(f"pstfast {args.command}: error: {exc}", file=sys.stderr)
        if isinstance(exc, UsageError):
            return EXIT_USAGE
        if isinstance(exc, InputError):
            return EXIT_INPUT
        if isinstance(exc, TransientError):
            return EXIT_TRANSIENT
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
