"""The release lifecycle: which node releases may run where, judged from the release table and Zebra's own rule."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, UPSTREAM
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.stack import AS_OF_ENV, load_stack_config
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan, evaluate
from zbi_infra.plan.project import StackFile, find_project
from zbi_infra.release_check import (
    SUPPLIED_HEIGHT_TOLERANCE_DAYS,
    _config_key_errors,
    instance_release_problems,
    rendered_config_keys,
)
from zbi_infra.releases import BLOCKS_PER_DAY, ZEBRAD, chain_anchor, release_table

SOURCES = json.loads((UPSTREAM / "SOURCES.json").read_text())
ZEBRAD_TABLE = release_table()["zebrad"]
ZAKURAD_TABLE = release_table()["zakurad"]


def instance(network: str = "mainnet", **node: Any) -> InstanceConfig:
    return InstanceConfig.model_validate({"network": network, "node": node})


def problems(config: InstanceConfig, today: date) -> tuple[list[str], list[str]]:
    found = instance_release_problems("main", config, today)
    return found.errors, found.warnings


def supplied(released: date, height: int | None = None) -> dict[str, Any]:
    """Release data as an operator copies it from a release's end_of_support.rs. zBI holds no Zebra release newer
    than 6.3.0 (the newest tag upstream when this was written), so the tests use data shaped like a real one."""
    return {
        "estimatedReleaseHeight": chain_anchor().height_on(released) if height is None else height,
        "released": released.isoformat(),
        "source": "https://github.com/ZcashFoundation/zebra/blob/v6.4.0/zebrad/src/components/sync/end_of_support.rs",
    }


# ---- the table and its evidence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zebrad", "zakurad"])
def test_every_release_in_the_table_is_its_evidence(kind: str) -> None:
    table = release_table()[kind]
    directory = {"zebrad": "zebra", "zakurad": "zakura"}[kind]
    for version, release in table.releases.items():
        fixture = f"{directory}/releases/v{version}.json"
        evidence = json.loads((UPSTREAM / fixture).read_text())
        assert SOURCES[fixture]["repository"] == table.repository and SOURCES[fixture]["tag"] == f"v{version}"
        assert release.estimated_release_height == evidence["estimated_release_height"]
        assert release.eos_after_days == evidence["eos_panic_after_days"]
        assert release.released == date.fromisoformat(evidence["released"])
        assert release.config_keys == {s: frozenset(k) for s, k in evidence["config_keys"].items()}
    # Zebra's window is 105 days, Zakura's 40 (each release's end_of_support.rs).
    assert {r.eos_after_days for r in table.releases.values()} == {"zebrad": {105}, "zakurad": {40}}[kind]


def test_the_default_zebrad_is_the_newest_release_and_its_image_facts_match() -> None:
    newest = ZEBRAD_TABLE.newest
    assert ZEBRAD.tag == newest.version
    facts = json.loads((UPSTREAM / f"zebra/releases/v{newest.version}.json").read_text())["image"]
    assert (ZEBRAD.user, ZEBRAD.uid, ZEBRAD.binary) == (facts["user"], facts["uid"], facts["binary"])
    # The pinned release's keys are the ones extraOptions are validated against.
    assert newest.config_keys == {
        s: frozenset(k) for s, k in json.loads((UPSTREAM / "zebra/zebrad-config-keys.json").read_text()).items()
    }


def test_the_chain_anchor_agrees_with_every_release_estimate() -> None:
    """Each release's ESTIMATED_RELEASE_HEIGHT is where its maintainers expected the chain on its tag day: the one
    anchor zBI dates heights from must agree with all of them, or the dates it prints are off by that much."""
    anchor = chain_anchor()
    for table in release_table().values():
        for release in table.releases.values():
            drift_days = (release.estimated_release_height - anchor.height_on(release.released)) / BLOCKS_PER_DAY
            # The tolerance zBI applies to supplied release data; hotfixes keep their release's height, so they drift
            # by the days between the two tags (zakurad 1.1.1: 3.8 days).
            assert abs(drift_days) <= SUPPLIED_HEIGHT_TOLERANCE_DAYS, (table.kind, release.version, drift_days)


def test_the_end_of_support_date_is_when_a_75_second_chain_passes_the_halt_height() -> None:
    """Zebra's rule (end_of_support.rs): halt once the tip is above ESTIMATED_RELEASE_HEIGHT + EOS_PANIC_AFTER * 1152.
    Mine a chain with exponential 75 s block intervals from the anchor and see the day the tip passes that height."""
    anchor = chain_anchor()
    rng = random.Random(21)
    for release in [*ZEBRAD_TABLE.releases.values(), *ZAKURAD_TABLE.releases.values()]:
        halt_height = release.estimated_release_height + release.eos_after_days * 1152
        assert release.end_of_support_height == halt_height
        seconds = sum(rng.expovariate(1 / 75) for _ in range(halt_height + 1 - anchor.height))
        halted_on = anchor.day + timedelta(seconds=seconds)
        assert abs((halted_on - release.end_of_support).days) <= 1, (release.version, halted_on)
    assert ZEBRAD_TABLE.releases["6.3.0"].end_of_support == date(2026, 11, 23)
    # 6.2.3 was tagged four days after the height it was estimated for: it halts before tag day + 105.
    assert ZEBRAD_TABLE.releases["6.2.3"].end_of_support == date(2026, 11, 6)


# ---- Mainnet: known releases only -------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["5.0.0", "6.4.0", "6.3.0-rc.1"])
def test_an_unknown_tag_is_refused_on_mainnet_with_a_fix_that_can_be_followed(tag: str) -> None:
    errors, _ = problems(instance(image={"tag": tag}), date(2026, 9, 1))
    (error,) = errors
    assert error.startswith(f"zbi:instances.main.node.image.tag: zebrad {tag} is not a release zBI knows")
    assert "tools/add_release.py --kind zebrad" in error and "node.release: estimatedReleaseHeight" in error
    assert "zebrad/src/components/sync/end_of_support.rs" in error


def test_an_unknown_tag_on_a_test_network_is_warned_naming_what_was_not_checked() -> None:
    errors, warnings = problems(instance("testnet", image={"tag": "6.4.0"}), date(2030, 1, 1))
    assert not errors
    assert warnings == [
        "instance main: zebrad 6.4.0 is not in zBI's release table: its config schema was not checked (the rendered "
        "zebrad config and extraOptions were checked against 6.3.0's keys, and zebrad refuses unknown keys at "
        "start). Add it with tools/add_release.py"
    ]
    # A known release on a test network: nothing to say, whatever the day (test networks never halt).
    assert problems(instance("testnet", image={"tag": "6.0.0"}), date(2030, 1, 1)) == ([], [])


def test_an_expired_release_is_refused_naming_the_release_that_replaces_it() -> None:
    errors, _ = problems(instance(image={"tag": "6.2.3"}), date(2026, 11, 10))
    (error,) = errors
    assert "zebrad 6.2.3 reached its Mainnet end of support on about 2026-11-06 (height 3545960)" in error
    assert error.endswith("Fix: set node.image.tag: 6.3.0 (supported on Mainnet until about 2026-11-23)")
    # Following the fix works that day.
    assert problems(instance(image={"tag": "6.3.0"}), date(2026, 11, 10))[0] == []


@pytest.mark.parametrize("tag", ["v6.3.0", "v6.2.3"])
def test_the_git_tag_spelling_is_refused_for_the_upstream_image(tag: str) -> None:
    errors, _ = problems(instance("testnet", image={"tag": tag}), date(2026, 9, 1))
    assert errors == [
        f"zbi:instances.main.node.image.tag: zfnd/zebra publishes its images without the git tag's 'v' (its release "
        f"workflow tags the version, e.g. zfnd/zebra:6.3.0), so zfnd/zebra:{tag} does not exist. "
        f"Fix: write tag: {tag[1:]}"
    ]
    # A mirror may keep the git spelling: the release behind it is still checked.
    errors, warnings = problems(instance(image={"repository": "registry.example/zebra", "tag": tag}), date(2026, 9, 1))
    assert not errors and "taken to be ZcashFoundation/zebra's release" in warnings[0]
    expired, _ = problems(instance(image={"repository": "registry.example/zebra", "tag": "5.0.0"}), date(2026, 9, 1))
    assert "not a release zBI knows" in expired[0]


@pytest.mark.parametrize("directory", ["zebra", "zakura"])
def test_the_upstream_images_are_tagged_without_the_v(directory: str) -> None:
    """Read from each release's publishing workflow (tools/add_release.py refuses a release whose rule changed)."""
    for fixture in (UPSTREAM / directory / "releases").glob("v*.json"):
        published = json.loads(fixture.read_text())["docker_tag"]
        assert published["tag"] == fixture.stem.removeprefix("v"), fixture
        assert published["rule"] in ("type=semver,pattern={{version}}", 'image_version="${RELEASE_TAG#v}"')


# ---- release data the operator supplies --------------------------------------------------------------------------


def test_supplied_release_data_lets_a_newer_release_run_and_is_checked() -> None:
    today = date(2026, 11, 30)
    config = instance(image={"tag": "6.4.0"}, release=supplied(date(2026, 11, 20)))
    errors, warnings = problems(config, today)
    assert not errors
    assert any("comes from node.release: zBI has not read its config schema" in w for w in warnings)
    # Its end of support follows the same rule: 105 days of blocks after its height.
    errors, _ = problems(config, date(2027, 3, 6))
    assert "reached its Mainnet end of support on about 2027-03-05" in errors[0]


@pytest.mark.parametrize(
    ("release", "tag", "expected"),
    [
        # An extra digit, or a height copied from another release: months off the chain on that day.
        (supplied(date(2026, 11, 20), 34_600_000), "6.4.0", "release.estimatedReleaseHeight: 34600000 is"),
        (supplied(date(2026, 11, 20), 3_444_000), "6.4.0", "Fix: copy ESTIMATED_RELEASE_HEIGHT from zebrad/src/"),
        (supplied(date(2026, 12, 20)), "6.4.0", "release.released: 2026-12-20 is after today (2026-11-30)"),
        (supplied(date(2026, 8, 10)), "6.3.0", "release: zebrad 6.3.0 is in zBI's release table"),
    ],
)
def test_supplied_release_data_that_disagrees_with_the_chain_is_refused(
    release: dict[str, Any], tag: str, expected: str
) -> None:
    errors, _ = problems(instance(image={"tag": tag}, release=release), date(2026, 11, 30))
    assert len(errors) == 1 and expected in errors[0] and "Fix:" in errors[0], errors


def test_a_release_that_lacks_a_key_zbi_renders_is_refused_on_every_network() -> None:
    newest = ZEBRAD_TABLE.newest
    assert newest.config_keys is not None
    older = replace(
        newest,
        config_keys={**newest.config_keys, "health": newest.config_keys["health"] - {"ready_max_tip_age"}},
    )
    config = instance("testnet")
    assert "health.ready_max_tip_age" in rendered_config_keys(config)
    (error,) = _config_key_errors("zbi:instances.main.node", "zebrad 6.x", older, config)
    assert "does not accept health.ready_max_tip_age" in error
    assert _config_key_errors("zbi:instances.main.node", "zebrad 6.3.0", newest, config) == []


# ---- the real date -----------------------------------------------------------------------------------------------


def test_today_every_known_zebrad_release_is_past_its_end_of_support() -> None:
    """Said plainly (README, docs/releases.md): on the day this was written (2026-11-30) the newest Zebra release
    upstream is 6.3.0, whose end of support was about 2026-11-23; the newest Zakura release 1.2.0 ended ~2026-09-23."""
    today = date.today()
    if today < date(2026, 11, 24):
        pytest.fail("the machine's clock is before this test was written")
    assert all(r.end_of_support < today for t in release_table().values() for r in t.releases.values())


def test_today_a_mainnet_instance_on_an_expired_release_is_refused_with_a_followable_fix() -> None:
    from tests.stack_input import config_with

    today = date.today()
    mainnet = config_with(zbi__instances={"testnet": {"network": "mainnet"}})
    with pytest.raises(ConfigError) as caught:
        load_stack_config(mainnet, today=today)
    (error,) = caught.value.problems
    assert "zebrad 6.3.0 reached its Mainnet end of support on about 2026-11-23" in error
    assert f"every zebrad release zBI knows is past its end of support on {today}" in error
    # The fix, followed: a newer tag with its release data.
    fixed = config_with(
        zbi__instances={
            "testnet": {
                "network": "mainnet",
                "node": {"image": {"tag": "6.4.0"}, "release": supplied(today - timedelta(days=3))},
            }
        }
    )
    config = load_stack_config(fixed, today=today)
    assert config.release_problems(today)[0] == []


# ---- the library, the examples and the dev stack, at the real date ------------------------------------------------

EXISTING_CLUSTER = ROOT / "examples" / "existing-cluster"


def plan_example(config: dict[str, Any]) -> Plan:
    return evaluate(
        StackFile(stack="mainnet", config={"zbi-existing-cluster:context": "c", **config}),
        program=EXISTING_CLUSTER,
        project="zbi-existing-cluster",
    )


@pytest.fixture
def real_date(monkeypatch: pytest.MonkeyPatch) -> date:
    """Plan as a user does today: no fixed `ZBI_AS_OF` (tests/conftest.py fixes one for the rest of the suite)."""
    monkeypatch.delenv(AS_OF_ENV)
    return date.today()


def test_today_the_library_refuses_what_the_stack_file_refuses(real_date: date) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_example({})
    (error,) = caught.value.problems
    assert error.startswith("ZcashNode mainnet: InstanceConfig node.image.tag: zebrad 6.3.0 reached its Mainnet end")
    assert "under node.release: estimatedReleaseHeight" in error
    with pytest.raises(ConfigError, match=r"zebrad 5\.0\.0 is not a release zBI knows"):
        plan_example({"zbi-existing-cluster:zebradTag": "5.0.0"})


def test_today_the_existing_cluster_example_plans_with_the_release_data_its_docstring_asks_for(
    real_date: date,
) -> None:
    release = supplied(real_date - timedelta(days=2))
    plan = plan_example({"zbi-existing-cluster:zebradTag": "6.4.0", "zbi-existing-cluster:release": release})
    (statefulset,) = [r for r in plan.kubernetes_objects() if r.name == "mainnet-zebrad"]
    images = {c["image"] for c in statefulset.inputs["spec"]["template"]["spec"]["containers"]}
    assert "zfnd/zebra:6.4.0" in images
    assert any("comes from node.release" in w for w in plan.warnings)
    # ... and as a test-network instance, with nothing to supply.
    assert plan_example({"zbi-existing-cluster:network": "testnet"}).of_type("zbi:node:ZcashNode")


def test_today_the_dev_stack_and_the_readme_programs_plan(real_date: date, tmp_path: Path) -> None:
    from tests.test_examples import readme_programs, run_readme_program

    dev = find_project(ROOT).stack_file("dev")
    plan = evaluate(dev, program=find_project(ROOT).main, project="zbi")
    assert plan.of_type("zbi:node:ZcashNode")
    for number, source in enumerate(readme_programs()):
        directory = tmp_path / str(number)
        directory.mkdir()
        config = dict(dev.config) if "ZbiPlatform(" in source and "stack_config_values" in source else None
        assert run_readme_program(source, directory, config=config, stack="dev").of_type("zbi:node:ZcashNode")
