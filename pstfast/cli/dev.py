"""``pstfast dev synth|damage|shadow|perf-dashboard``: test PSTs, rollout checks, the perf dashboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .common import add_json, emit, nonnegative_int, positive_int

if TYPE_CHECKING:
    from .common import Subcommands


def _synth(args: argparse.Namespace) -> int:
    from ..synthetic.corpus import SynthOptions, synth, synth_family

    options = SynthOptions(
        messages=args.messages,
        seed=args.seed,
        folders=args.folders,
        attachment_rate=args.attachment_rate,
        large_attachment_every=args.large_attachment_every,
        body_kib=args.body_kib,
        ids_by_folder=args.ids_by_folder,
        layout=args.layout,
        codepage=args.codepage,
        ost=args.ost,
    )
    if args.custodians is not None:
        if args.damaged:
            raise UsageError("--damaged writes variants of one PST: not with --custodians")
        family = synth_family(args.out, args.custodians, options=options, truth=args.truth, team_size=args.team_size)
        emit(args, family.summary(), family)
        return 0
    result = synth(args.out, options=options, truth=args.truth, damaged=args.damaged)
    emit(args, result.summary(), result)
    return 0


def _damage(args: argparse.Namespace) -> int:
    from ..synthetic.damage import damage

    variants = damage(args.pst, args.out_dir, kinds=args.kind)
    emit(args, "\n".join(f"{v.kind}: {v.path}  ({v.description})" for v in variants), variants)
    return 0


def _shadow(args: argparse.Namespace) -> int:
    from ..pipeline.shadow import shadow

    report = shadow(args.source, v2_prefix=args.v2_out, workers=args.workers)
    emit(args, report.render(), {"ok": report.ok, "report": report.render()})
    return 0 if report.ok else 1


def _perf_dashboard(args: argparse.Namespace) -> int:
    # the dashboard lives in the source checkout's perf/ (not shipped in the wheel)
    root = Path(__file__).resolve().parents[2]
    if not (root / "perf" / "dashboard.py").exists():
        raise UsageError(f"perf-dashboard needs a source checkout: no perf/dashboard.py under {root}")
    sys.path.insert(0, str(root))
    from perf.dashboard import main as dashboard_main

    argv = [] if args.results is None else ["--results", args.results]
    return int(dashboard_main(argv + ([] if args.out is None else ["--out", args.out])))


def register(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """Add ``dev`` and its commands."""
    p = sub.add_parser("dev", parents=[common], help="test PSTs, damaged variants, shadow runs, the perf dashboard",
                       description="Tools for testing pstfast and rolling it out.")
    tools = p.add_subparsers(dest="tool", metavar="TOOL", required=True)

    q = tools.add_parser(
        "synth", parents=[common], help="write a deterministic synthetic PST (with an optional ground truth)",
        description="Write a synthetic Unicode PST from a seed: same seed, same bytes. With --custodians N, "
                    "write N custodians' PSTs of one organisation into the folder OUT instead.")
    q.add_argument("out", metavar="OUT.pst", help="PST file to write (with --custodians: the folder)")
    q.add_argument("--custodians", type=positive_int, default=None, metavar="N",
                   help="write N custodians' mailboxes of one organisation (OUT/custodian-NNN.pst): each message "
                        "in its sender's and its custodian recipients' PSTs, replies across mailboxes, forwards, "
                        "shared attachments; --messages counts the organisation's messages")
    q.add_argument("--team-size", type=positive_int, default=None, metavar="N",
                   help="with --custodians: the staff work in teams of N, a thread within one team (and one in "
                        "five with someone of another); default: anyone writes in any thread")
    q.add_argument("--messages", type=nonnegative_int, default=200, help="top-level messages (default 200)")
    q.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    q.add_argument("--folders", type=positive_int, default=None, help="user folders (default: grows with --messages)")
    q.add_argument("--attachment-rate", type=float, default=0.3, help="share of messages with attachments (default 0.3)")
    q.add_argument("--large-attachment-every", type=nonnegative_int, default=500,
                   help="one >1 MB attachment every N messages (0: none; default 500)")
    q.add_argument("--body-kib", type=nonnegative_int, default=2, help="typical body size in KiB (default 2)")
    q.add_argument("--ids-by-folder", action="store_true",
                   help="message node ids in a block per folder, not in arrival order as Outlook's: libpff and "
                        "readpst open big files fast")
    q.add_argument("--layout", choices=["unicode", "ansi", "unicode4k"], default="unicode",
                   help="file layout: unicode (wVer 23, Outlook 2003 and later; default) or ansi (wVer 14, "
                        "Outlook 97-2002: every string PT_STRING8 in --codepage) or unicode4k (wVer 36, Outlook 2013 "
                        "OSTs: 4 KiB pages, zlib-compressed blocks; with --ost as Outlook writes it)")
    q.add_argument("--codepage", type=positive_int, default=1252, metavar="CP",
                   help="the Windows code page of an ANSI file's strings (default 1252; what it lacks is '?')")
    q.add_argument("--ost", action="store_true", help="client signature SO (an OST, offline store) instead of SM")
    q.add_argument("--truth", metavar="OUT.json", help="also write the ground truth as JSON")
    q.add_argument("--damaged", metavar="DIR",
                   help="also write damaged variants (truncated, flipped data block, broken B-tree page) into DIR")
    add_json(q)
    q.set_defaults(handler=_synth)

    q = tools.add_parser("damage", parents=[common], help="derive damaged variants of a good PST for reliability tests")
    q.add_argument("pst", help="a good PST file")
    q.add_argument("out_dir", help="folder to write the variants into")
    q.add_argument("--kind", action="append", choices=["truncated", "flipped_block", "broken_btree"],
                   help="variant to write (repeatable; default all)")
    add_json(q)
    q.set_defaults(handler=_damage)

    q = tools.add_parser("shadow", parents=[common],
                         help="legacy (pypff, one process) vs V2 on the same PST; exit 1 on a mismatch")
    q.add_argument("source", help="PST path or s3:// URL")
    q.add_argument("--v2-out", metavar="PREFIX", help="compare an existing V2 output folder instead of extracting now")
    q.add_argument("--workers", type=positive_int, help="V2 extractor processes")
    add_json(q)
    q.set_defaults(handler=_shadow)

    q = tools.add_parser("perf-dashboard", parents=[common],
                         help="build the perf dashboard (HTML + PNG) from perf/results (source checkout)")
    q.add_argument("--results", metavar="DIR", help="benchmark JSON folder (default perf/results)")
    q.add_argument("--out", metavar="DIR", help="output folder (default RESULTS/dashboard)")
    q.set_defaults(handler=_perf_dashboard)
