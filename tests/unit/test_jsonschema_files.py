from __future__ import annotations

from schemas.jsonschema_export import SCHEMA_DIR, generate


def test_checked_in_json_schemas_match_the_models() -> None:
    generated = generate()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(generated), "run: kairos schemas export"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} drifted from the models; run: kairos schemas export"
