"""What a benchmark run measures, and for how long: the quick, full and tiny presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# BioSemi 64 (10-10) names, so that the gateway's region aggregation sees real electrodes.
CHANNELS_64 = (
    "Fp1", "AF7", "AF3", "F1", "F3", "F5", "F7", "FT7", "FC5", "FC3", "FC1", "C1", "C3", "C5",
    "T7", "TP7", "CP5", "CP3", "CP1", "P1", "P3", "P5", "P7", "P9", "PO7", "PO3", "O1", "Iz",
    "Oz", "POz", "Pz", "CPz", "Fpz", "Fp2", "AF8", "AF4", "AFz", "Fz", "F2", "F4", "F6", "F8",
    "FT8", "FC6", "FC4", "FC2", "FCz", "Cz", "C2", "C4", "C6", "T8", "TP8", "CP6", "CP4", "CP2",
    "P2", "P4", "P6", "P8", "P10", "PO8", "PO4", "O2",
)
# An OpenBCI Cyton's usual montage.
CHANNELS_8 = ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2")
SYSTEMS = ("gateway", "gateway_recording", "bare_relay", "lsl")


@dataclass(frozen=True)
class StreamSetting:
    """One kind of device stream: channel count, sampling rate and chunk length."""

    name: str
    n_channels: int
    rate: float
    chunk_ms: float

    @property
    def chunk(self) -> int:
        """Samples per chunk (frame)."""
        return max(1, round(self.rate * self.chunk_ms / 1000.0))

    @property
    def chunk_s(self) -> float:
        """Seconds per chunk."""
        return self.chunk / self.rate

    @property
    def channel_names(self) -> tuple[str, ...]:
        if self.n_channels == len(CHANNELS_8):
            return CHANNELS_8
        if self.n_channels <= len(CHANNELS_64):
            return CHANNELS_64[: self.n_channels]
        return tuple(f"EEG{i:03d}" for i in range(self.n_channels))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "chunk_samples": self.chunk,
                "frames_per_s": self.rate / self.chunk}


CYTON = StreamSetting("8ch-250Hz", 8, 250.0, 20.0)
CLINICAL_CAP = StreamSetting("64ch-1kHz", 64, 1000.0, 20.0)
SETTINGS = {s.name: s for s in (CYTON, CLINICAL_CAP)}  # what --setting may name


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and durations of one ``neurogate bench`` run.

    ``steps`` are the stream counts tried in turn (streams are added, never restarted);
    a system stops at the first count it does not sustain. Each step streams for
    ``warmup_s`` before a measurement window of ``measure_s``.
    """

    name: str
    settings: tuple[StreamSetting, ...] = (CYTON, CLINICAL_CAP)
    steps: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    systems: tuple[str, ...] = SYSTEMS
    warmup_s: float = 2.0
    measure_s: float = 4.0
    max_p99_ms: float = 100.0
    revocation_trials: int = 200
    revocation_background: int = 4
    # With a setting's name: the background is instead half the streams the gateway
    # sustained in this run at that setting (the "half-load background").
    revocation_half_load_of: str | None = None
    revocation_subjects: int = 8
    pipeline_seconds: float = 60.0
    policy_iterations: int = 300
    clinical_format: str = "binary"  # how the clinical app subscribes: binary or json
    setting_steps: dict[str, tuple[int, ...]] = field(default_factory=dict)  # by setting name

    def steps_for(self, setting: StreamSetting) -> tuple[int, ...]:
        """The stream counts tried for ``setting`` (its own, else ``steps``)."""
        return self.setting_steps.get(setting.name, self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "streams": [s.as_dict() for s in self.settings],
            "steps": {s.name: list(self.steps_for(s)) for s in self.settings},
            "systems": list(self.systems),
            "warmup_s": self.warmup_s,
            "measure_s": self.measure_s,
            "max_p99_ms": self.max_p99_ms,
            "revocation_trials": self.revocation_trials,
            "revocation_background_streams": self.revocation_background,
            "revocation_half_load_of": self.revocation_half_load_of,
            "revocation_subjects": self.revocation_subjects,
            "pipeline_seconds": self.pipeline_seconds,
            "policy_iterations": self.policy_iterations,
            "clinical_format": self.clinical_format,
            "apps_per_stream": {"clinical": "clinical_monitoring: filtered",
                                "feedback": "neurofeedback: focus_index, relaxation_index"},
        }


QUICK = BenchConfig(
    name="quick",
    steps=(1, 8, 24, 48, 96),
    warmup_s=1.0,
    measure_s=2.5,
    revocation_trials=40,
    revocation_background=2,
    revocation_subjects=4,
    pipeline_seconds=15.0,
    policy_iterations=100,
    setting_steps={CLINICAL_CAP.name: (1, 8, 16, 32)},
)
FULL = BenchConfig(
    name="full",
    # Every 8 streams up to 128: at the top a step of 16 was an eighth of the count, too
    # coarse to tell a ratio of 0.75 from one of 0.8.
    steps=(1, 2, 4, 8, *range(16, 129, 8), 144, 160, 176, 192),
    warmup_s=2.0,
    measure_s=5.0,
    revocation_trials=200,
    revocation_background=4,
    revocation_half_load_of=CLINICAL_CAP.name,
    pipeline_seconds=60.0,
    policy_iterations=300,
    setting_steps={CLINICAL_CAP.name: (1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64,
                                       80, 96, 128, 160)},
)


def tiny(settings: tuple[StreamSetting, ...] = (CYTON, CLINICAL_CAP),
         systems: tuple[str, ...] = ("gateway", "bare_relay", "lsl")) -> BenchConfig:
    """A seconds-long run for the smoke test: one stream per setting, 3 revocations."""
    return BenchConfig(name="tiny", settings=settings, steps=(1,), systems=systems,
                       warmup_s=0.5, measure_s=1.0, revocation_trials=3,
                       revocation_background=0, revocation_subjects=1, pipeline_seconds=2.0,
                       policy_iterations=10)


__all__ = ["CLINICAL_CAP", "CYTON", "FULL", "QUICK", "SETTINGS", "SYSTEMS", "BenchConfig",
           "StreamSetting", "tiny"]
