"""The AsyncAPI 3.0 document of the two WebSocket endpoints, served at ``/asyncapi.json``.

It is built from the protocol's own constants (`neurogate_client.wire`: close codes and
their meaning, message types and codes, channel types, units, limits, the binary header)
and the error codes of `neurogate.errors`, so it cannot drift from the code. The document
describes the gateway: it *receives* a device's hello, frames and bye, and *sends* the
welcome, notices, and an app's products. ``docs/protocol.md`` is the prose beside it.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from neurogate_client import wire

from neurogate import errors

__all__ = ["ASYNCAPI_PATH", "build_document", "error_codes", "install", "message_schemas"]

ASYNCAPI_PATH = "/asyncapi.json"
_INGEST, _SUBSCRIBE = "ingest", "subscribe"
_FRAME_FIELDS = ("magic", "version", "kind", "sequence", "timestamp", "n_channels", "n_samples",
                 "reserved")
_FRAME_MEANING = {
    "magic": 'b"NG"', "version": f"protocol version ({wire.PROTOCOL_VERSION})",
    "kind": f"{wire.KIND_DEVICE} = device samples, {wire.KIND_RAW} = raw, "
            f"{wire.KIND_FILTERED} = filtered (app egress)",
    "sequence": "frame number, +1 per frame, wraps at 2**32",
    "timestamp": "time of the first sample, seconds since the Unix epoch",
    "n_channels": "channel count", "n_samples": "sample count", "reserved": "zero",
}
_STRUCT_TYPES = {"2s": "bytes", "B": "uint8", "H": "uint16", "I": "uint32", "d": "float64"}


def error_codes() -> list[str]:
    """Every ``code`` an ``error`` message can carry: the protocol's notices and closing
    codes, and the code of each `neurogate.errors.NeurogateError` a handshake may map."""
    found = {errors.NeurogateError.code}
    pending: list[type[errors.NeurogateError]] = [errors.NeurogateError]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.add(sub.code)
            pending.append(sub)
    return sorted(found | set(wire.NOTICE_CODES) | set(wire.CLOSING_CODES))


def frame_layout() -> list[dict[str, Any]]:
    """The binary frame's fields, from the codec's ``struct`` format."""
    codes = re.findall(r"\d*[a-zA-Z]", wire.HEADER.format.lstrip("<"))
    if len(codes) != len(_FRAME_FIELDS):
        msg = f"The frame header {wire.HEADER.format!r} no longer has {len(_FRAME_FIELDS)} fields."
        raise RuntimeError(msg)
    rows, offset = [], 0
    for name, code in zip(_FRAME_FIELDS, codes, strict=True):
        size = struct.calcsize("<" + code)
        rows.append({"offset": offset, "size": size, "field": name,
                     "type": _STRUCT_TYPES[code], "meaning": _FRAME_MEANING[name]})
        offset += size
    rows.append({"offset": offset, "size": "4 * n_channels * n_samples", "field": "samples",
                 "type": "float32", "meaning": "sample-major: every channel of sample 0, "
                                               "then sample 1, ...; volts on egress"})
    return rows


def _const(value: str) -> dict[str, Any]:
    return {"type": "string", "const": value}


def _strings() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any], required: list[str], description: str
            ) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties,
            "required": required}


def message_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each message's payload, by message name."""
    t = wire.MessageType
    codes = error_codes()
    error = _object({
        "type": _const(t.ERROR), "code": {"type": "string", "enum": codes},
        "message": {"type": "string"}, "field": {"type": ["string", "null"]},
        "sequence": {"type": "integer", "minimum": 0, "maximum": 0xFFFFFFFF},
        "missing": {"type": "integer", "minimum": 1},
        "retry_after": {"type": "integer", "minimum": 1}},
        ["type", "code", "message"],
        "A notice (codes " + ", ".join(wire.NOTICE_CODES) + ": the stream goes on) or the "
        "reason for the close that follows (every other code).")
    return {
        "hello": _object({
            "type": _const(t.HELLO), "protocol": {"const": wire.PROTOCOL_VERSION},
            "sampling_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000},
            "channels": {"type": "array", "minItems": 1, "maxItems": wire.MAX_CHANNELS,
                         "items": _object({
                             "name": {"type": "string", "minLength": 1,
                                      "maxLength": wire.MAX_CHANNEL_NAME},
                             "type": {"type": "string", "enum": list(wire.CHANNEL_TYPES)},
                             "unit": {"type": "string", "enum": list(wire.UNITS),
                                      "default": "uV"}},
                             ["name", "type"], "One channel, in frame row order.")},
            "device_id": {"type": "string", "maxLength": wire.MAX_DEVICE_ID}},
            ["type", "protocol", "channels", "sampling_rate"],
            f"The device's first message (text, at most {wire.MAX_HELLO_BYTES} bytes): "
            "exactly the registered channel names, types and rate."),
        "bye": _object({"type": _const(t.BYE)}, ["type"],
                       "The device ends its stream; the gateway closes with 1000."),
        "welcome": _object({
            "type": _const(t.WELCOME), "protocol": {"const": wire.PROTOCOL_VERSION},
            "stream": {"type": "string"},
            "max_frame_bytes": {"type": "integer", "const": wire.MAX_FRAME_BYTES},
            "notes": {"type": "object"}}, ["type", "protocol", "stream", "max_frame_bytes"],
            "The gateway accepted the hello; binary frames may follow."),
        "error": error,
        "subscribed": _object({
            "type": _const(t.SUBSCRIBED), "subject": {"type": "string"},
            "purpose": {"type": "string"},
            "format": {"type": "string", "enum": ["json", "binary"]},
            "products": {"type": "object", "additionalProperties": _object({
                "window_s": {"type": "number"}, "output_rate_hz": {"type": "number"},
                "channels": {"type": "string", "enum": ["electrodes", "regions", "global"]}},
                ["window_s", "output_rate_hz", "channels"], "A product's finest resolution.")},
            "valid_until": {"type": "number"},
            "not_allowed": _object({"reasons": _strings(), "explanations": _strings()},
                                   ["reasons", "explanations"], "Withheld products: why.")},
            ["type", "subject", "purpose", "format", "products", "valid_until", "not_allowed"],
            "The subscription is accepted; data follows whenever the subject's device streams."),
        "refused": _object({
            "type": _const(t.REFUSED), "subject": {"type": "string"},
            "purpose": {"type": "string"}, "reasons": _strings(),
            "explanations": _strings()}, ["type", "subject", "purpose", "reasons"],
            f"The consent policy refused the subscription; close {wire.CloseCode.FORBIDDEN} "
            "follows."),
        "data": _object({
            "type": _const(t.DATA), "product": {"type": "string", "enum": list(wire.PRODUCTS)},
            "seq": {"type": "integer", "minimum": 1}, "t": {"type": "number"},
            "labels": _strings(), "columns": _strings(), "window_s": {"type": "number"},
            "rate_hz": {"type": "number"}, "data": {"type": ["array", "number"]}},
            ["type", "product", "seq", "t", "labels", "columns", "window_s", "rate_hz", "data"],
            "One product frame (raw and filtered in volts, band power in V^2)."),
        "gap": _object({"type": _const(t.GAP), "dropped": {"type": "integer", "minimum": 1}},
                       ["type", "dropped"],
                       "The app read too slowly: this many messages were dropped."),
        "revoked": _object({
            "type": _const(t.REVOKED), "reason": {"type": "string"}, "reasons": _strings(),
            "explanations": _strings()}, ["type", "reason", "reasons", "explanations"],
            f"The consent ended; close {wire.CloseCode.REVOKED} follows and nothing more flows."),
    }


def _binary(name: str, summary: str) -> dict[str, Any]:
    return {"name": name, "summary": summary, "contentType": "application/octet-stream",
            "payload": {"type": "string", "format": "binary",
                        "description": f"A {wire.HEADER_SIZE}-byte little-endian header "
                                       f"(struct {wire.HEADER.format!r}), then float32 "
                                       f"samples; at most {wire.MAX_FRAME_BYTES} bytes."},
            "x-frame-layout": frame_layout()}


def _close_codes(endpoint: str) -> list[dict[str, Any]]:
    skip = {wire.CloseCode.NOT_FOUND, wire.CloseCode.REVOKED} if endpoint == _INGEST else {
        wire.CloseCode.HELLO_TIMEOUT, wire.CloseCode.DUPLICATE_STREAM, wire.CloseCode.BAD_FRAME,
        wire.CloseCode.TOO_BIG}
    return [{"code": code, "name": m.name, "sentWhen": m.sent_when, "reconnect": m.retry}
            for code, m in sorted(wire.CLOSE_CODES.items()) if code not in skip]


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def build_document(*, host: str = "127.0.0.1:8000", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI 3.0 document, for a gateway reachable at ``host``.

    Parameters
    ----------
    host : str
        ``host[:port]`` of the gateway.
    secure : bool
        Whether it is served over TLS (``wss``) or not (``ws``).

    Returns
    -------
    document : dict
        JSON-serialisable AsyncAPI 3.0.0.
    """
    schemas = message_schemas()
    scheme = "https" if secure else "http"
    messages = {name: {"name": name, "title": name, "contentType": "application/json",
                       "payload": schema, "summary": schema["description"]}
                for name, schema in schemas.items()}
    messages["deviceFrame"] = _binary("deviceFrame", f"Device samples (kind {wire.KIND_DEVICE}) "
                                                     "in the units the hello declared.")
    messages["productFrame"] = _binary(
        "productFrame", f"With format=binary: a raw (kind {wire.KIND_RAW}) or filtered (kind "
                        f"{wire.KIND_FILTERED}) frame, volts, the subscription's seq as its "
                        "sequence number; rows in the order of the JSON data's labels.")
    auth_header = {"type": "object", "required": ["Authorization"], "properties": {
        "Authorization": {"type": "string", "pattern": "^Bearer .+",
                          "description": "An access token from /oauth/token."}}}
    ingest_messages = ["hello", "deviceFrame", "bye", "welcome", "error"]
    subscribe_messages = ["subscribed", "refused", "data", "productFrame", "gap", "revoked",
                          "error"]
    channels = {
        _INGEST: {
            "address": "/v1/stream/ingest", "title": "Device ingest",
            "description": "A device (client credentials, scope stream:ingest) sends its hello "
                           "within 10 s, then binary frames, then bye.",
            "messages": {m: _ref("components", "messages", m) for m in ingest_messages},
            "bindings": {"ws": {"method": "GET", "headers": auth_header,
                                "bindingVersion": "0.1.0"}},
            "x-close-codes": _close_codes(_INGEST)},
        _SUBSCRIBE: {
            "address": "/v1/stream/subscribe", "title": "App subscription",
            "description": "An app (client credentials, scope stream:subscribe) receives the "
                           "products its consent allows, for one subject and purpose.",
            "messages": {m: _ref("components", "messages", m) for m in subscribe_messages},
            "bindings": {"ws": {"method": "GET", "headers": auth_header, "query": {
                "type": "object", "required": ["subject", "purpose"], "properties": {
                    "subject": {"type": "string",
                                "description": "The app's pseudonym for the subject."},
                    "purpose": {"type": "string", "description": "A purpose id."},
                    "format": {"type": "string", "enum": ["json", "binary"],
                               "default": "json"}}},
                "bindingVersion": "0.1.0"}},
            "x-close-codes": _close_codes(_SUBSCRIBE)},
    }

    def operation(action: str, channel: str, names: list[str], summary: str,
                  scheme_name: str) -> dict[str, Any]:
        return {"action": action, "channel": _ref("channels", channel), "summary": summary,
                "security": [_ref("components", "securitySchemes", scheme_name)],
                "messages": [_ref("channels", channel, "messages", n) for n in names]}

    operations = {
        "receiveHello": {**operation("receive", _INGEST, ["hello"], "A device says hello.",
                                     "deviceToken"),
                         "reply": {"channel": _ref("channels", _INGEST), "messages": [
                             _ref("channels", _INGEST, "messages", "welcome"),
                             _ref("channels", _INGEST, "messages", "error")]}},
        "receiveDeviceFrames": operation("receive", _INGEST, ["deviceFrame", "bye"],
                                         "Samples, then bye.", "deviceToken"),
        "sendIngestNotices": operation("send", _INGEST, ["error"],
                                       "Notices about frames, or why the stream closes.",
                                       "deviceToken"),
        "sendSubscription": operation("send", _SUBSCRIBE, ["subscribed", "refused", "error"],
                                      "The answer to a subscription.", "appToken"),
        "sendProducts": operation("send", _SUBSCRIBE, ["data", "productFrame", "gap"],
                                  "Governed products, and gap notices.", "appToken"),
        "sendRevoked": operation("send", _SUBSCRIBE, ["revoked", "error"],
                                 "The end of a subscription.", "appToken"),
    }
    token_url = f"{scheme}://{host}/oauth/token"
    scopes = {"stream:ingest": "Stream a paired device's samples.",
              "stream:subscribe": "Receive consented products."}
    security = {
        name: {"type": "oauth2", "description": f"OAuth2 client credentials of a {who}, sent as "
                                                 "'Authorization: Bearer <token>'.",
               "flows": {"clientCredentials": {"tokenUrl": token_url, "availableScopes": scopes}},
               "scopes": [scope]}
        for name, who, scope in (("deviceToken", "device", "stream:ingest"),
                                 ("appToken", "app", "stream:subscribe"))}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "NeuroGate streams", "version": str(wire.PROTOCOL_VERSION),
                 "description": "Device ingest and governed app egress over WebSocket "
                                "(docs/protocol.md). Close codes: x-close-codes of each "
                                "channel."},
        "defaultContentType": "application/json",
        "servers": {"gateway": {"host": host, "protocol": "wss" if secure else "ws",
                                "security": [_ref("components", "securitySchemes", n)
                                             for n in security]}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "securitySchemes": security},
    }


def install(app: FastAPI) -> None:
    """Serve the document at ``ASYNCAPI_PATH`` on ``app``."""

    @app.get(ASYNCAPI_PATH, include_in_schema=False)
    def read_asyncapi(request: Request) -> JSONResponse:
        """The AsyncAPI 3.0 document of the stream endpoints."""
        return JSONResponse(build_document(host=request.url.netloc,
                                           secure=request.url.scheme == "https"))
