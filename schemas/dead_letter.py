"""Dead-letter records: rejected input with the reason and the exact bytes received."""

from __future__ import annotations

import base64

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PREVIEW_CHARS = 512


class DeadLetter(BaseModel):
    """Enough to find, understand and replay a rejected message."""

    model_config = ConfigDict(extra="allow", frozen=True)

    source_topic: str
    partition: int
    offset: int
    key: str | None
    error_type: str
    reason: str
    raw_base64: str = Field(description="The exact bytes received, base64: replay from this.")
    raw_preview: str = Field(description="The start of the bytes as text, for humans.")
    received_at: AwareDatetime
    schema_version: int = 1

    @staticmethod
    def encode_raw(raw: bytes) -> tuple[str, str]:
        """Return the replayable and the human-readable forms of ``raw``."""
        preview = raw[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]
        return base64.b64encode(raw).decode("ascii"), preview
