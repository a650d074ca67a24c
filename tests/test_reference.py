"""docs/configuration.md is generated from the config models: it must be current, and cover every key in use."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from zbi_infra.config.reference import render_reference
from zbi_infra.config.stack_file import read_stack_file


def test_the_committed_reference_is_what_the_models_say() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_reference(), "run: python -m zbi_infra.config.reference > docs/configuration.md"


def test_every_key_of_every_stack_file_is_in_the_reference() -> None:
    documented = dict(re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", render_reference(), flags=re.MULTILINE))

    def paths(value: object, prefix: str) -> list[str]:
        # A map of scalars (tags, labels) has the user's keys: documented as the map itself.
        if not isinstance(value, dict) or documented.get(prefix, "").startswith("map of string to string"):
            return [prefix]
        found = [prefix]
        for key, inner in value.items():
            if prefix == "zbi:instances" or prefix.endswith(".nodeGroups"):
                found += paths(inner, f"{prefix}.<name>")
            else:
                found += paths(inner, f"{prefix}.{key}")
        return found

    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        config = read_stack_file(stack_file.stem.split(".", 1)[1], stack_file).config
        for key, value in config.items():
            if key.startswith("zbi:"):
                used = paths(value, key)
                missing = [p for p in used if p not in documented]
                assert not missing, (stack_file.name, missing)
    # Lists of mappings are documented by their elements' keys.
    assert "zbi:cluster.admins[].principalArn" in documented


def test_descriptions_come_from_the_models_code() -> None:
    rows = {
        key: description.strip()
        for key, description in re.findall(r"^\| `([^`]+)` \|.*\| ([^|]*) \|$", render_reference(), flags=re.MULTILINE)
    }
    from zbi_infra.config.public_tls import PublicTlsConfig

    # A field's description= ...
    provider = PublicTlsConfig.model_fields["provider"].description
    assert provider and rows["zbi:instances.<name>.endpoints.publicTls.provider"] == provider.replace("|", "\\|")
    # ... else the comment above the field in the model's source ...
    assert rows["zbi:instances.<name>.endpoints.allowedCidrs"].startswith("Networks allowed to reach a public endpoint")
    # ... else its model's own docstring; never a docstring inherited from the base model.
    assert rows["zbi:platform"].startswith("`zbi:platform`: ")
    assert not any(text.startswith("Unknown keys are errors") for text in rows.values())
    # The access file's keys are documented too.
    assert "## Access files (`access/<instance>.yaml`)" in render_reference()
    assert {"jsonRpc.methods", "grpc.methods", "users[].keySha256", "anonymous.rateLimit.requestsPerSecond"} <= set(
        rows
    )


def test_every_key_in_the_reference_has_a_description() -> None:
    """Stack-file and access-file keys alike: a key added without a description= or a comment above it fails here."""
    rows = re.findall(r"^\| `([^`]+)` \|.*\|([^|]*)\|$", render_reference(), flags=re.MULTILINE)
    assert len(rows) > 150
    assert not [key for key, description in rows if not description.strip()]
    described = dict((key, description.strip()) for key, description in rows)
    # A field declared in a base model is described by the comment there (MethodSet.methods).
    assert described["jsonRpc.methods"] == described["grpc.methods"] != ""
    # A map's entry row says what each entry is.
    assert described["zbi:instances.<name>"].startswith("One instance: a full node")
