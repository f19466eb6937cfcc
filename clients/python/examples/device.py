"""Stream a synthetic EEG device into a NeuroGate gateway with neurogate-client.

    python device.py --gateway http://127.0.0.1:8000 --client-id device_... \\
        --client-secret ... --channels C3,C4 --rate 250 --seconds 5

The channel names, types and rate must be the device's registration exactly. Prints the
client's final counters as one JSON object; exits 1 if the gateway refused the stream or
samples were lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

import numpy as np
from neurogate_client import ClientError, DeviceClient, StreamInfo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", action="append", required=True,
                        help="gateway address; repeat it for several nodes of one cluster")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--channels", default="C3,C4", help="comma-separated channel names")
    parser.add_argument("--type", default="eeg", help="channel type of every channel")
    parser.add_argument("--rate", type=float, default=250.0, help="sampling rate in Hz")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to stream")
    args = parser.parse_args()

    names = tuple(args.channels.split(","))
    info = StreamInfo(names, (args.type,) * len(names), args.rate)
    chunk = max(1, round(args.rate / 25))  # 40 ms of samples per push
    try:
        with DeviceClient(args.gateway, client_id=args.client_id,
                          client_secret=args.client_secret, info=info) as client:
            client.wait_connected(timeout=15)
            t0, pushed = time.time(), 0
            while pushed < args.seconds * args.rate:
                t = (pushed + np.arange(chunk)) / args.rate
                volts = np.vstack([20e-6 * np.sin(2 * np.pi * 10 * t + i)
                                   for i in range(len(names))])  # 10 Hz alpha, 20 µV
                client.push(volts, t0 + pushed / args.rate)
                pushed += chunk
                time.sleep(max(0.0, t0 + pushed / args.rate - time.time()))  # real time
        stats = client.stats()
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(stats)))
    return 0 if client.failure is None and stats.lost_samples == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
