from __future__ import annotations

from schemas.jsonschema_export import SCHEMA_DIR, generate


def test_checked_in_json_schemas_and_asyncapi_document_match_the_models() -> None:
    generated = generate()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.iterdir() if p.is_file()}
    assert set(on_disk) == set(generated), "run: kairos schemas export"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} drifted from the models; run: kairos schemas export"


def test_checked_in_rule_file_schema_matches_the_format() -> None:
    from rules.language.file_schema import SCHEMA_PATH
    from rules.language.file_schema import generate as generate_rule_schema

    assert SCHEMA_PATH.read_text(encoding="utf-8") == generate_rule_schema(), (
        "rule-file.schema.json drifted; run: kairos rules schema"
    )


def test_the_example_rule_files_validate_against_the_rule_file_schema() -> None:
    import json

    import jsonschema
    from ruamel.yaml import YAML

    from app.settings import EXAMPLE_RULES
    from rules.language.file_schema import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for path in sorted(EXAMPLE_RULES.glob("*.yaml")):
        document = json.loads(json.dumps(YAML(typ="safe").load(path.read_text()), default=str))
        jsonschema.validate(document, schema)
