"""Receive an app's governed products from a NeuroGate gateway with neurogate-client.

    python app.py --gateway http://127.0.0.1:8000 --client-id app_... --client-secret ... \\
        --subject p_... --purpose clinical_monitoring --seconds 10

Prints one line per event and, at the end, one JSON object: samples received per product,
gaps, the revocation (if any) and the close code. Reconnects after breaks a new connection
can fix; never after a refusal or a revocation.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time

from neurogate_client import (
    AppSubscription,
    ClientError,
    Data,
    Gap,
    Notice,
    Revoked,
    Subscribed,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", action="append", required=True,
                        help="gateway address; repeat it for several nodes of one cluster")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--subject", required=True, help="your app's pseudonym of the subject")
    parser.add_argument("--purpose", required=True, help="the purpose of your app's consent")
    parser.add_argument("--format", choices=["json", "binary"], default="json")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to listen")
    parser.add_argument("--stop-after", type=int, default=0, metavar="N",
                        help="stop once N raw samples (per channel) arrived (0: never)")
    args = parser.parse_args()

    samples: collections.Counter[str] = collections.Counter()
    summary: dict = {"gaps": 0, "revoked": None}
    deadline = time.monotonic() + args.seconds
    try:
        with AppSubscription(args.gateway, client_id=args.client_id,
                             client_secret=args.client_secret, subject=args.subject,
                             purpose=args.purpose, format=args.format,
                             reconnect=True) as sub:
            print(f"subscribed: products {sorted(sub.subscribed['products'])}", flush=True)
            while (left := deadline - time.monotonic()) > 0:
                if args.stop_after and samples["raw"] >= args.stop_after:
                    break
                event = sub.next_event(timeout=left)
                if event is None and sub.closed:
                    break
                if isinstance(event, Data):
                    samples[event.product] += event.data.shape[-1] if event.data.ndim else 1
                elif isinstance(event, Gap):
                    summary["gaps"] += event.dropped
                    print(f"gap: {event.dropped} messages dropped", flush=True)
                elif isinstance(event, Revoked):
                    summary["revoked"] = event.reason
                    print(f"revoked: {event.reason}", flush=True)
                elif isinstance(event, Subscribed):
                    print("subscribed again after a reconnect", flush=True)
                elif isinstance(event, Notice):
                    print(f"notice: {event.code}: {event.message}", flush=True)
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps({"samples": dict(samples), **summary, "close_code": sub.close_code}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
