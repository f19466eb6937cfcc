"""``neurogate devices ...``: stream a BrainFlow board, an LSL outlet or a recording into a
gateway, and republish an app's governed products as LSL outlets.

Every command talks to a running gateway over its public interfaces only (OAuth2 token
endpoint and the WebSocket protocol), exactly as a vendor's or an app's code would.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from neurogate_client import ClientError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from neurogate.errors import DeviceError

devices_app = typer.Typer(help="Stream devices, LSL outlets and recordings through a gateway.",
                          no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

GatewayOpt = Annotated[str | None, typer.Option(
    "--gateway", envvar="NEUROGATE_GATEWAY_URL", show_default=False,
    help="The gateway's base address [default: http://NEUROGATE_HOST:NEUROGATE_PORT, the "
         "address `neurogate serve` listens on].")]
ClientIdOpt = Annotated[str, typer.Option(
    "--client-id", envvar="NEUROGATE_CLIENT_ID",
    help="Client id from the registration (POST /v1/devices or /v1/apps).")]
SecretOpt = Annotated[str, typer.Option(
    "--client-secret", envvar="NEUROGATE_CLIENT_SECRET", show_default=False,
    help="Client secret from the registration.")]
DurationOpt = Annotated[float, typer.Option(
    "--duration", min=0.0, help="Seconds to stream (0: until interrupted).")]
BufferOpt = Annotated[float, typer.Option(
    "--buffer-seconds", min=0.1, help="Seconds of samples kept while the gateway is away.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print the final counters as one JSON object.")]
MaxLossOpt = Annotated[float, typer.Option(
    "--max-loss", min=0.0, max=1.0, help="Exit with code 3 when more than this fraction of "
    "the pushed samples was lost (0: any loss fails).")]
PROBE_TIMEOUT_S = 5.0
LOSS_EXIT = 3


def gateway_url(given: str | None = None) -> str:
    """The gateway to talk to: ``--gateway`` (or NEUROGATE_GATEWAY_URL), else the address
    `neurogate serve` listens on by the same settings (NEUROGATE_HOST, NEUROGATE_PORT)."""
    if given:
        return given.rstrip("/")
    from neurogate.settings import get_settings

    settings = get_settings()
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _check_reachable(url: str) -> None:
    """Fail fast, with what to do, when nothing answers at the gateway's address."""
    import httpx

    try:
        httpx.get(f"{url}/healthz", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        err.print(f"Error: the gateway at {url} cannot be reached ({type(exc).__name__}: "
                  f"{exc or 'no answer'}). Start it with `neurogate serve`, or give its "
                  "address with --gateway or NEUROGATE_GATEWAY_URL.", markup=False,
                  highlight=False)
        raise typer.Exit(1) from exc


def reader_options(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings as keyword arguments for MNE's reader: integers, numbers,
    true/false and none become those; anything else stays a string."""
    options: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            msg = (f"Invalid value for the '--reader-option' option. It must be NAME=VALUE, "
                   f"e.g. data_format=int16, but got {item[:80]!r} instead.")
            raise DeviceError(msg, field="reader_option")
        value: Any = text.strip()
        lowered = value.lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered == "none":
            value = None
        else:
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
        options[name] = value
    return options


def _check_loss(stats: Any, max_loss: float) -> None:
    if stats.pushed_samples and stats.lost_samples / stats.pushed_samples > max_loss:
        err.print(f"Error: {stats.lost_samples} of {stats.pushed_samples} samples were lost "
                  f"({stats.lost_samples / stats.pushed_samples:.2%}), more than --max-loss "
                  f"{max_loss:g} allows.", markup=False, highlight=False)
        raise typer.Exit(LOSS_EXIT)


def _registration_needed(info: Any, what: str) -> typer.Exit:
    body = json.dumps(info.registration())
    err.print(f"{what} is not registered with the gateway: no --client-id and --client-secret "
              "were given, and the gateway refuses devices it does not know. A vendor "
              "registers it with")
    err.print(f"  POST /v1/devices {body}", markup=False, highlight=False, soft_wrap=True)
    err.print("(the channel names, types and rate must be exactly these), a clinician or the "
              "subject pairs it with POST /v1/devices/{id}/pairing, and the returned "
              "credentials are passed with --client-id and --client-secret (or "
              "NEUROGATE_CLIENT_ID and NEUROGATE_CLIENT_SECRET).", markup=False)
    return typer.Exit(2)


def _fail(exc: DeviceError | ClientError) -> typer.Exit:
    err.print(f"Error: {exc.message}", markup=False, highlight=False)
    return typer.Exit(1)


def _summary(stats: Any, as_json: bool) -> None:
    if as_json:
        console.print(json.dumps(asdict(stats)), markup=False, highlight=False,
                      soft_wrap=True)
        return
    console.print(f"Pushed {stats.pushed_samples} samples in {stats.pushed_frames} frames; "
                  f"the gateway confirmed {stats.delivered_samples}; lost "
                  f"{stats.lost_samples} (buffer full or not sent at exit); "
                  f"{stats.connections} connection(s).")


def _progress(what: str, total: float | None) -> tuple[Progress, Any]:
    """A progress bar for a replay (seconds of recording), a live status line otherwise."""
    if total is not None:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        return progress, progress.add_task(f"Replaying {what}", total=total, status="")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                        console=err, transient=True)
    return progress, progress.add_task(f"Streaming {what}", total=None, status="")


def _run(adapter: Any, *, what: str, gateway: str | None, client_id: str, client_secret: str,
         duration: float, buffer_s: float, as_json: bool, max_loss: float,
         replay: bool = False) -> None:
    """Prepare the adapter, stream it through a DeviceClient, print the counters."""
    from neurogate_client import DeviceClient

    from neurogate.devices import stream_adapter

    gateway = gateway_url(gateway)
    stop = threading.Event()
    try:
        with adapter:
            info = adapter.info
            for warning in getattr(adapter, "warnings", ()):
                err.print(f"Warning: MNE: {warning}", markup=False, highlight=False)
            if not client_id or not client_secret:
                raise _registration_needed(info, what)
            _check_reachable(gateway)
            client = DeviceClient(gateway, client_id=client_id, client_secret=client_secret,
                                  info=info, buffer_s=buffer_s)
            progress, task = _progress(what, adapter.duration if replay else None)

            def advance(chunk: Any) -> None:
                s = client.stats()
                progress.update(task, advance=chunk.n_times / info.sfreq, status=(
                    f"pushed {s.pushed_samples}, confirmed {s.delivered_samples}, lost "
                    f"{s.lost_samples} samples" + ("" if s.connected else ", reconnecting")))

            with progress, client, adapter.streaming():
                if not client.wait_connected(timeout=15):
                    err.print(f"The gateway at {gateway} does not answer yet; samples are "
                              "buffered and the client keeps retrying.")
                try:
                    stream_adapter(adapter, client, duration_s=duration or None, stop=stop,
                                   block=replay, on_chunk=advance)
                except KeyboardInterrupt:
                    stop.set()
            stats = client.stats()
            if client.failure is not None:
                raise client.failure
    except (DeviceError, ClientError) as exc:
        raise _fail(exc) from exc
    _summary(stats, as_json)
    _check_loss(stats, max_loss)


@devices_app.command("stream")
def stream_board(
    board: Annotated[str, typer.Option(help="BrainFlow board name or id (BoardIds).")
                     ] = "synthetic",
    serial_port: Annotated[str, typer.Option(help="BrainFlow serial_port.")] = "",
    mac_address: Annotated[str, typer.Option(help="BrainFlow mac_address.")] = "",
    ip_address: Annotated[str, typer.Option(help="BrainFlow ip_address.")] = "",
    ip_port: Annotated[int, typer.Option(help="BrainFlow ip_port.")] = 0,
    ip_protocol: Annotated[int, typer.Option(help="BrainFlow ip_protocol (IpProtocolTypes).")
                           ] = 0,
    other_info: Annotated[str, typer.Option(help="BrainFlow other_info.")] = "",
    serial_number: Annotated[str, typer.Option(help="BrainFlow serial_number.")] = "",
    file: Annotated[str, typer.Option(help="BrainFlow file (playback board).")] = "",
    timeout: Annotated[int, typer.Option(help="BrainFlow timeout in seconds.")] = 0,
    master_board: Annotated[int, typer.Option(help="BrainFlow master_board (streaming and "
                                              "playback boards).")] = -100,
    kinds: Annotated[str, typer.Option(help="Channel kinds, comma-separated: eeg, emg, ecg, "
                                       "eog.")] = "eeg",
    gateway: GatewayOpt = None,
    client_id: ClientIdOpt = "",
    client_secret: SecretOpt = "",
    duration: DurationOpt = 0.0,
    buffer_seconds: BufferOpt = 2.0,
    as_json: JsonOpt = False,
    max_loss: MaxLossOpt = 0.01,
) -> None:
    """Stream a BrainFlow board (the synthetic board by default) into the gateway."""
    from neurogate.devices import BrainFlowAdapter

    params = {"serial_port": serial_port, "mac_address": mac_address,
              "ip_address": ip_address, "ip_port": ip_port, "ip_protocol": ip_protocol,
              "other_info": other_info, "serial_number": serial_number, "file": file,
              "timeout": timeout, "master_board": master_board}
    try:
        adapter = BrainFlowAdapter(board, params=params,
                                   kinds=[k.strip() for k in kinds.split(",") if k.strip()])
    except (DeviceError, ClientError) as exc:
        raise _fail(exc) from exc
    _run(adapter, what=f"BrainFlow board {adapter.board_name}", gateway=gateway,
         client_id=client_id, client_secret=client_secret, duration=duration,
         buffer_s=buffer_seconds, as_json=as_json, max_loss=max_loss)


@devices_app.command("replay")
def replay_file(
    path: Annotated[Path, typer.Argument(help="A recording MNE reads (EDF, BDF, EEGLAB .set, "
                                         "FIF, BrainVision .vhdr, ...).")],
    speed: Annotated[float, typer.Option(min=0.01, help="1 is real time; the gateway accepts "
                                         "at most 1.5 x, so faster replays are paced to 1.4 x "
                                         "after a short burst.")] = 1.0,
    start: Annotated[float, typer.Option(min=0.0, help="Start at this second.")] = 0.0,
    length: Annotated[float, typer.Option("--length", min=0.0, help="Seconds of the "
                                          "recording to replay (0: to the end).")] = 0.0,
    types: Annotated[str, typer.Option(help="Channel types to send, comma-separated (add "
                                       "stim or misc only if the registration lists them).")
                     ] = "eeg,ecog,seeg",
    reader_option: Annotated[list[str] | None, typer.Option(
        "--reader-option", metavar="NAME=VALUE", show_default=False,
        help="An option for MNE's reader of this format (repeatable), e.g. "
             "data_format=int16 for a Neuroscan .cnt.")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Refuse a file MNE warns about (by default its warnings are "
                         "shown and the replay goes on).")] = False,
    gateway: GatewayOpt = None,
    client_id: ClientIdOpt = "",
    client_secret: SecretOpt = "",
    buffer_seconds: BufferOpt = 2.0,
    as_json: JsonOpt = False,
    max_loss: MaxLossOpt = 0.01,
) -> None:
    """Replay a recording through the gateway; identifying header fields never leave."""
    from neurogate.devices import FileAdapter

    try:
        options = reader_options(reader_option or [])
        adapter = FileAdapter(path, types=[t.strip() for t in types.split(",") if t.strip()],
                              start_s=start, duration_s=length or None, speed=speed,
                              reader_options=options, strict=strict, isolate=True)
    except (DeviceError, ClientError) as exc:
        raise _fail(exc) from exc
    _run(adapter, what=path.name, gateway=gateway, client_id=client_id,
         client_secret=client_secret, duration=0.0, buffer_s=buffer_seconds, as_json=as_json,
         max_loss=max_loss, replay=True)


@devices_app.command("lsl-in")
def lsl_in(
    name: Annotated[str, typer.Option(help="The outlet's name.")] = "",
    type: Annotated[str, typer.Option(help="The outlet's type, e.g. EEG.")] = "",
    source_id: Annotated[str, typer.Option(help="The outlet's source id.")] = "",
    resolve_timeout: Annotated[float, typer.Option(min=0.0, help="Seconds to look for it.")
                               ] = 5.0,
    unit: Annotated[str, typer.Option(help="Unit of channels whose metadata has none, e.g. "
                                      "microvolts.")] = "",
    channel_type: Annotated[str, typer.Option(help="Type of channels whose metadata has "
                                              "none, e.g. eeg.")] = "",
    gateway: GatewayOpt = None,
    client_id: ClientIdOpt = "",
    client_secret: SecretOpt = "",
    duration: DurationOpt = 0.0,
    buffer_seconds: BufferOpt = 2.0,
    as_json: JsonOpt = False,
    max_loss: MaxLossOpt = 0.01,
) -> None:
    """Attach an LSL outlet (by name, type or source id) and stream it into the gateway."""
    from neurogate.devices import LslInletAdapter

    try:
        adapter = LslInletAdapter(name=name or None, type=type or None,
                                  source_id=source_id or None, resolve_timeout=resolve_timeout,
                                  unit=unit or None, channel_type=channel_type or None)
    except (DeviceError, ClientError) as exc:
        raise _fail(exc) from exc
    _run(adapter, what="This LSL outlet", gateway=gateway, client_id=client_id,
         client_secret=client_secret, duration=duration, buffer_s=buffer_seconds,
         as_json=as_json, max_loss=max_loss)


@devices_app.command("lsl-out")
def lsl_out(
    subject: Annotated[str, typer.Option(help="The subject's pseudonym, as your app knows it.")],
    purpose: Annotated[str, typer.Option(help="The purpose of your app's consent.")],
    name_prefix: Annotated[str, typer.Option(help="Outlet names are '<prefix> <product>'.")
                           ] = "NeuroGate",
    gateway: GatewayOpt = None,
    client_id: ClientIdOpt = "",
    client_secret: SecretOpt = "",
) -> None:
    """Republish your app's governed products as local LSL outlets (one per product)."""
    from neurogate_client import AppSubscription

    from neurogate.devices import LslOutBridge

    def announce(message: dict[str, Any]) -> None:
        if message.get("type") == "data" and message["product"] not in seen:
            seen.add(message["product"])
            err.print(f"Publishing {message['product']!r} as the LSL outlet "
                      f"'{name_prefix} {message['product']}'.")

    seen: set[str] = set()
    try:
        subscription = AppSubscription(gateway_url(gateway), client_id=client_id,
                                       client_secret=client_secret, subject=subject,
                                       purpose=purpose)
        granted = subscription.open()
    except (DeviceError, ClientError) as exc:
        raise _fail(exc) from exc
    err.print(f"Subscribed to {purpose!r}: products {sorted(granted['products'])}.")
    with LslOutBridge(subscription, name_prefix=name_prefix, on_message=announce) as bridge:
        try:
            result = bridge.run()
        except KeyboardInterrupt:
            bridge.destroy()
            err.print("Interrupted; the outlets are gone.")
            return
    if result.reason is not None:
        err.print(f"The consent ended ({result.reason}); the outlets are gone.")
    console.print(json.dumps(asdict(result)), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if result.close_code in (1000, 4410) else 1)


__all__ = ["devices_app"]

if __name__ == "__main__":  # python -m neurogate.gateway.cli_devices ...
    devices_app()
