"""``python -m chaos``: start the embedded infrastructure, run the chaos plan, print and save the result.

Exits 1 when anything accepted was lost, a reply was pushed twice, or a conversation's replies arrived out
of order; 2 when the run itself could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--messages", type=int, default=int(os.environ.get("MESSAGES") or 3000))
    p.add_argument("--conversations", type=int, default=int(os.environ.get("CONVERSATIONS") or 300))
    p.add_argument("--plan", choices=["full", "slice", "kafka"], default="full",
                   help="which faults (default: full; kafka: on Apache Kafka's three nodes, AGENTBUS_TEST_KAFKA_LIBS)")
    p.add_argument("--duration", type=float, default=None, help="seconds to spread the load over")
    p.add_argument("--drain-timeout", type=float, default=900.0)
    p.add_argument("--embeddings", action="store_true",
                   help="also run the embeddings server (semantic memory); on 2 cores it costs most of the "
                        "pipeline's throughput, so spread the load over more time (--duration)")
    p.add_argument("--json", type=Path, default=RESULTS / "last.json", help="where to write the result")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    from chaos.report import render
    from chaos.run import Options, run_chaos
    from tests.support.platform import start_infra

    opts = Options(messages=args.messages, conversations=args.conversations, plan=args.plan,
                   duration_s=args.duration, drain_timeout_s=args.drain_timeout, embeddings=args.embeddings)
    broker = "Apache Kafka (three nodes)" if os.environ.get("AGENTBUS_TEST_KAFKA_LIBS") else "the broker"
    print(f"[chaos] starting {broker}, PostgreSQL" + (" and embeddings" if args.embeddings else ""), flush=True)
    async with start_infra(embeddings=args.embeddings) as infra:
        result = await run_chaos(infra, opts)
    render(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    print(f"result written to {args.json}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.messages < 1 or arguments.conversations < 1:
        sys.exit("need at least one message and one conversation")
    try:
        code = asyncio.run(main(arguments))
    except KeyboardInterrupt:
        code = 2
    except Exception as exc:  # the run could not be carried out: say why, distinctly from a failed check
        import traceback

        traceback.print_exc()
        print(f"chaos run aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
