"""``kairos generate`` to files: deterministic, valid wire messages, in production order."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.cli import main
from schemas.codec import decode_event, decode_profile
from schemas.errors import InvalidEventError


def _generate(directory: Path, *extra: str) -> None:
    argv = ["generate", "--out", str(directory), "--customers", "40", "--days", "2", *extra]
    assert main(argv) == 0


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    _generate(tmp_path / "a", "--seed", "3")
    _generate(tmp_path / "b", "--seed", "3")
    _generate(tmp_path / "c", "--seed", "4")
    for name in ("profiles.jsonl", "events.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/events.jsonl").read_bytes() != (tmp_path / "c/events.jsonl").read_bytes()


def test_files_hold_valid_profiles_and_events_with_their_anomalies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _generate(tmp_path, "--poison-every", "100")
    summary = capsys.readouterr().out.splitlines()[-1]  # "40 profiles, N events, M poison ..."
    events, poison_written = (
        int(part.split()[0].replace(",", "")) for part in summary.split(", ")[1:3]
    )
    profiles = [decode_profile(line) for line in (tmp_path / "profiles.jsonl").read_bytes().split()]
    assert len(profiles) == 40 and len({p.customer_id for p in profiles}) == 40
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    valid, poison = [], 0
    for line in lines:
        try:
            valid.append(decode_event(line))
        except InvalidEventError:  # the deliberately malformed ones
            poison += 1
    assert len(lines) == events + poison_written and poison_written == events // 100
    assert poison >= 1, "some poison is not even a valid event (the rest is on the wrong topic)"
    assert {e.event_type for e in valid} == {"app_click", "transaction", "drop_off"}
    ids = [e.event_id for e in valid]
    assert len(ids) > len(set(ids)), "re-deliveries (same event_id) are part of the stream"
    assert any(
        later.occurred_at < earlier.occurred_at for earlier, later in itertools.pairwise(valid)
    ), "late events are written where they were produced, after newer ones"
