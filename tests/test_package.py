from __future__ import annotations

import pytest

import zbi_infra


@pytest.mark.parametrize("name", zbi_infra.__all__)
def test_every_export_resolves(name: str) -> None:
    assert getattr(zbi_infra, name).__name__ == name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        zbi_infra.NoSuchThing  # noqa: B018
