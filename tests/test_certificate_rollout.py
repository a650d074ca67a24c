"""A renewed server certificate rolls every pod that serves it: lightwalletd, Zaino and the gateway's nginx read it
only at start, and a renewal changes nothing but the Secret unless the pod templates carry its checksum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import one
from zbi_infra.plan import mocks
from zbi_infra.plan.engine import Plan
from zbi_infra.tls import CERTIFICATE_CHECKSUM_ANNOTATION, certificate_checksum

NS = "zbi-testnet"
# A change that has nothing to do with the certificate.
UNRELATED = {"zbi:instances": {"testnet": {"lightwallet": {"maxReplicas": 7}}}}
ZAINO = {"zbi:instances": {"testnet": {"lightwallet": {"kind": "zaino"}}}}


def checksums(plan: Plan, light_wallet: str = "lightwalletd") -> dict[str, str]:
    def annotation(kind: str, name: str) -> str:
        return one(plan, kind, name, NS)["spec"]["template"]["metadata"]["annotations"][CERTIFICATE_CHECKSUM_ANNOTATION]

    return {light_wallet: annotation("StatefulSet", light_wallet), "gateway": annotation("Deployment", "gateway")}


def renewed(digest: Callable[..., str]) -> Callable[..., str]:
    """The mocks' certificate, as a renewal would issue it: a new certificate under the same resource name."""

    def renewed_digest(*parts: str, **kwargs: Any) -> str:
        if parts and parts[0].endswith("-grpc-tls-cert"):
            return digest(*parts, "renewed", **kwargs)
        return digest(*parts, **kwargs)

    return renewed_digest


def test_the_checksum_follows_the_certificates_content() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
    assert certificate_checksum(pem) == certificate_checksum(str(pem))
    assert certificate_checksum(pem) != certificate_checksum(pem.replace("MIIB", "MIIC"))


def test_every_server_of_the_certificate_carries_its_checksum(plan_stack: PlanStack) -> None:
    found = checksums(plan_stack("dev"))
    # One certificate (the light-wallet tier and the gateway share it): one checksum, of the certificate's content.
    assert len(set(found.values())) == 1
    expected = (
        f"-----BEGIN CERTIFICATE-----\nmock-{mocks._digest('testnet-grpc-tls-cert')}\n-----END CERTIFICATE-----\n"
    )
    assert set(found.values()) == {certificate_checksum(expected)}
    zaino = checksums(plan_stack("dev", merge=ZAINO), light_wallet="zaino")
    assert set(zaino.values()) == set(found.values())


def test_a_renewed_certificate_changes_the_pod_templates(
    plan_stack: PlanStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = checksums(plan_stack("dev", merge=UNRELATED))
    monkeypatch.setattr(mocks, "_digest", renewed(mocks._digest))
    after = checksums(plan_stack("dev", merge=UNRELATED))
    assert set(before) == set(after)
    assert all(before[name] != after[name] for name in before), (before, after)


def test_anything_else_leaves_the_checksum_alone(plan_stack: PlanStack) -> None:
    assert checksums(plan_stack("dev", merge=UNRELATED)) == checksums(plan_stack("dev"))
