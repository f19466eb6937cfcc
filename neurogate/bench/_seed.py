"""A benchmark clinic, populated through the gateway's public API.

Only the first administrator account is written straight into the database (as
``tests/gateway/conftest.build_clinic`` does); everything else (accounts, apps, subjects,
devices, pairings, consents) goes through the REST API and the OAuth2 token endpoint.
Subjects are added lazily as the stream count grows; each subject has one device per
stream setting (only one of them streams at a time) and two consents: the clinical app
for filtered EEG, the neurofeedback app for its indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from neurogate.bench.config import StreamSetting

PASSWORD = "bench-password-not-secret"
CLINICAL = ("clinical", "clinical_monitoring", ["filtered"])
FEEDBACK = ("feedback", "neurofeedback", ["focus_index", "relaxation_index"])


def create_admin(data_dir: Path, database_url: str | None = None) -> None:
    """Migrate the database (SQLite in ``data_dir`` unless ``database_url`` names another)
    and create the administrator account (before serving)."""
    from neurogate.consent.accounts import create_account
    from neurogate.gateway.state import build_gateway
    from neurogate.settings import Settings

    gateway = build_gateway(Settings(data_dir=data_dir, database_url=database_url,
                                     environment="development",
                                     password_hash_time_cost=1, password_hash_memory_kib=1024))
    with gateway.transaction() as session:
        create_account(session=session, username="admin", password=PASSWORD, role="admin")
    gateway.engine.dispose()


def notice(purpose_id: str) -> dict[str, Any]:
    """The notice fields a client sends after showing the current English text."""
    from neurogate.consent.purposes import load_catalog

    shown = load_catalog().get(purpose_id).notice("en", "plain")
    return {"version": shown.version, "language": "en", "variant": "plain",
            "sha256": shown.sha256}


def _ok(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        msg = (f"{response.request.method} {response.request.url.path} answered "
               f"{response.status_code}: {response.text[:300]}")
        raise RuntimeError(msg)
    return response.json()


@dataclass
class Credentials:
    """An OAuth2 client of the gateway (app or device)."""

    ident: str
    client_id: str
    secret: str


@dataclass
class BenchClinic:
    """What the benchmark created in the gateway, and how to act as each party."""

    http: httpx.Client
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    apps: dict[str, Credentials] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    devices: dict[tuple[str, int], Credentials] = field(default_factory=dict)
    consents: dict[tuple[str, str], str] = field(default_factory=dict)  # (label, subject)
    pseudonyms: dict[tuple[str, str], str] = field(default_factory=dict)  # (label, subject)

    def login(self, username: str) -> dict[str, str]:
        body = _ok(self.http.post("/v1/auth/login",
                                  json={"username": username, "password": PASSWORD}))
        self.http.cookies.clear()
        return {"Authorization": f"Bearer {body['session_token']}"}

    def token(self, creds: Credentials) -> str:
        body = _ok(self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(creds.client_id, creds.secret)))
        return str(body["access_token"])

    def bearer(self, creds: Credentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(creds)}"}

    # -- the parties ----------------------------------------------------------------------
    def setup(self) -> BenchClinic:
        self.headers["admin"] = self.login("admin")
        for username, role in (("bench.clinician", "clinician"), ("bench.vendor", "vendor"),
                               ("bench.owner", "app_owner")):
            _ok(self.http.post("/v1/accounts", headers=self.headers["admin"], json={
                "username": username, "password": PASSWORD, "role": role}), 201)
            self.headers[role] = self.login(username)
        for label, purpose, _ in (CLINICAL, FEEDBACK):
            made = _ok(self.http.post("/v1/apps", headers=self.headers["app_owner"], json={
                "name": f"Bench {label} app", "commercial": False,
                "declared_purposes": [purpose]}), 201)
            creds = made["credentials"]
            self.apps[label] = Credentials(made["app"]["id"], creds["client_id"],
                                           creds["client_secret"])
        return self

    def add_subject(self, label: str) -> str:
        made = _ok(self.http.post("/v1/subjects", headers=self.headers["clinician"], json={
            "display_name": label, "date_of_birth": "1990-01-01"}), 201)
        return str(made["id"])

    def add_device(self, setting: StreamSetting, serial: str, subject_id: str) -> Credentials:
        made = _ok(self.http.post("/v1/devices", headers=self.headers["vendor"], json={
            "model": f"Bench {setting.name}", "serial": serial,
            "channel_names": list(setting.channel_names),
            "channel_types": ["eeg"] * setting.n_channels, "sampling_rate": setting.rate}), 201)
        device = Credentials(made["device"]["id"], made["credentials"]["client_id"],
                             made["credentials"]["client_secret"])
        _ok(self.http.post(f"/v1/devices/{device.ident}/pairing",
                           headers=self.headers["clinician"], json={"subject_id": subject_id}))
        return device

    def grant(self, label: str, subject_id: str) -> str:
        """A clinician records the subject's consent to the app (given in person)."""
        _, purpose, products = CLINICAL if label == "clinical" else FEEDBACK
        made = _ok(self.http.post("/v1/consents", headers=self.headers["clinician"], json={
            "subject_id": subject_id, "app_id": self.apps[label].ident, "purpose_id": purpose,
            "products": products, "notice": notice(purpose)}), 201)
        consent_id = str(made["consent"]["id"])
        self.consents[(label, subject_id)] = consent_id
        return consent_id

    def revoke(self, consent_id: str) -> httpx.Response:
        return self.http.post(f"/v1/consents/{consent_id}/revoke",
                              headers=self.headers["clinician"], json={"reason": "benchmark"})

    def pseudonym(self, label: str, subject_id: str) -> str:
        """The app's pseudonym of the subject (read as the app, from its consents)."""
        key = (label, subject_id)
        if key not in self.pseudonyms:
            rows = _ok(self.http.get("/v1/consents", headers=self.bearer(self.apps[label])))
            by_id = {row["id"]: row["subject"] for row in rows}
            for (lab, subject), consent_id in self.consents.items():
                if lab == label and consent_id in by_id:
                    self.pseudonyms[(lab, subject)] = by_id[consent_id]
        return self.pseudonyms[key]

    def ensure_streams(self, setting: StreamSetting, n: int) -> None:
        """Subjects 0..n-1 exist, each with consents and a paired device of ``setting``."""
        while len(self.subjects) < n:
            subject = self.add_subject(f"Bench subject {len(self.subjects)}")
            self.grant(CLINICAL[0], subject)
            self.grant(FEEDBACK[0], subject)
            self.subjects.append(subject)
        for i in range(n):
            if (setting.name, i) not in self.devices:
                self.devices[(setting.name, i)] = self.add_device(
                    setting, f"{setting.name}-{i}", self.subjects[i])


def open_clinic(base_url: str) -> BenchClinic:
    """Accounts and the two apps of a freshly started benchmark gateway."""
    return BenchClinic(http=httpx.Client(base_url=base_url, timeout=60)).setup()


__all__ = ["CLINICAL", "FEEDBACK", "PASSWORD", "BenchClinic", "Credentials", "create_admin",
           "notice", "open_clinic"]
