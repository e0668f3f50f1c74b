"""Dead-letter records: rejected input with the reason and the exact bytes received."""

from __future__ import annotations

import base64

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PREVIEW_CHARS = 512
#: Raw bytes a dead letter keeps. Base64 adds a third, and the record must stay under the
#: producer's and broker's 1 MB message limit whatever arrived: a 1 MB poison message once
#: made a 1.4 MB dead letter that the producer refused, which stopped the worker.
MAX_RAW_BYTES = 256 * 1024


class DeadLetter(BaseModel):
    """Enough to find, understand and replay a rejected message."""

    model_config = ConfigDict(extra="allow", frozen=True)

    source_topic: str
    partition: int
    offset: int
    key: str | None
    error_type: str
    reason: str
    raw_base64: str = Field(
        description="The bytes received, base64: replay from this (the first MAX_RAW_BYTES "
        "when raw_truncated; the whole message stays at source_topic/partition/offset)."
    )
    raw_size: int | None = Field(default=None, description="Length of the input in bytes.")
    raw_truncated: bool = Field(default=False, description="raw_base64 is only the start.")
    raw_preview: str = Field(description="The start of the bytes as text, for humans.")
    received_at: AwareDatetime
    schema_version: int = 1

    @staticmethod
    def encode_raw(raw: bytes) -> tuple[str, str]:
        """Return the replayable (capped at MAX_RAW_BYTES) and human-readable forms of ``raw``."""
        preview = raw[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]
        return base64.b64encode(raw[:MAX_RAW_BYTES]).decode("ascii"), preview
