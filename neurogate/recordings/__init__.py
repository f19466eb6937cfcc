"""Encrypted recordings: data keys, segments, retention, export (docs/recordings.md).

Imports ``neurogate.consent`` and ``neurogate.signal`` only, never the gateway or a web
framework.
"""

from neurogate.recordings.crypto import (
    Keyring,
    RecordingError,
    decrypt,
    encrypt,
    generate_key,
    load_keyring,
    parse_keyring,
    segment_aad,
    write_keyring,
)
from neurogate.recordings.export import export_files, recording_edf, recordings_metadata
from neurogate.recordings.keys import (
    commit_rotation,
    data_key,
    destroy_data_key,
    key_status,
    rotate,
    shred,
)
from neurogate.recordings.retention import (
    RetentionRules,
    due,
    load_rules,
    parse_rules,
    sweep,
)
from neurogate.recordings.store import (
    SegmentData,
    SegmentStore,
    delete_recording,
    read_segment,
    segments_of,
    write_segment,
)

__all__ = [
    "Keyring",
    "RecordingError",
    "RetentionRules",
    "SegmentData",
    "SegmentStore",
    "commit_rotation",
    "data_key",
    "decrypt",
    "delete_recording",
    "destroy_data_key",
    "due",
    "encrypt",
    "export_files",
    "generate_key",
    "key_status",
    "load_keyring",
    "load_rules",
    "parse_keyring",
    "parse_rules",
    "read_segment",
    "recording_edf",
    "recordings_metadata",
    "rotate",
    "segment_aad",
    "segments_of",
    "shred",
    "sweep",
    "write_keyring",
    "write_segment",
]
