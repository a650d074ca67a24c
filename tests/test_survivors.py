"""Behaviours an independent mutation run found untested (a one-line bug in each passed the whole suite): each test
here fails on that bug, applied by hand and reverted (see README, "Mutation testing")."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, UPSTREAM, PlanStack
from tests.k8s_objects import objects, one, pod_spec
from tests.netpol_model import Pod, reachable
from zbi_infra.cli import main
from zbi_infra.config import load_stack_config
from zbi_infra.config.stack_file import StackFileError, read_stack_file
from zbi_infra.cost import Assumptions, estimate, load_prices
from zbi_infra.plan import engine
from zbi_infra.plan.engine import Plan

README = ROOT / "README.md"

# ---- zbi cost --check: the budget is for reserved capacity --------------------------------------------------------


def test_the_budget_check_compares_the_reserved_total(plan_stack: PlanStack, tmp_path: Path) -> None:
    """A budget between the reserved and the on-demand totals passes (the platform budgets for 1-year reserved
    EC2); one a dollar under the reserved total fails."""
    config = load_stack_config(read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config)
    result = estimate(plan_stack("dev"), config, prices=load_prices(None), assumptions=Assumptions())
    reserved, on_demand = result.total(reserved=True), result.total(reserved=False)
    assert reserved + 2 < on_demand
    for name in ["Pulumi.yaml", "Pulumi.dev.yaml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copytree(ROOT / "access", tmp_path / "access")
    stack = tmp_path / "Pulumi.dev.yaml"
    original = stack.read_text()
    assert "monthlyUsd: 2500\n" in original
    for budget, exit_code in ((round((reserved + on_demand) / 2), 0), (int(reserved) - 1, 4)):
        stack.write_text(original.replace("monthlyUsd: 2500\n", f"monthlyUsd: {budget}\n"))
        assert main(["cost", "dev", "--check", "--project-dir", str(tmp_path)]) == exit_code, budget


# ---- the gateway's termination: pre-stop pause, then the drain the README promises --------------------------------


def test_the_gateways_grace_period_covers_the_pre_stop_pause_and_the_whole_drain(plan_stack: PlanStack) -> None:
    """The kubelet's clock: the grace period starts when the pre-stop hook starts (the hook's time counts against
    it), the stop signal (SIGQUIT, nginx's graceful stop) follows the hook, SIGKILL ends the grace period. So nginx
    drains for `grace - pause` seconds: exactly the drain the README promises, after exactly its pause."""
    promise = re.search(r"a (\d+) s pre-stop pause .*? up to (\d+) s\)", " ".join(README.read_text().split()))
    assert promise, "the README's gateway section no longer states its pause and drain"
    pause_promised, drain_promised = int(promise[1]), int(promise[2])
    deployment = one(plan_stack("dev"), "Deployment", "gateway", "zbi-testnet")
    pod = pod_spec(deployment)
    (nginx,) = [c for c in pod["containers"] if c["name"] == "gateway"]
    hook = nginx["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[0] == "sleep"
    pause = int(hook[1])
    stop_signal_at, kill_at = pause, pod["terminationGracePeriodSeconds"]
    assert pause == pause_promised
    assert kill_at - stop_signal_at == drain_promised


# ---- zcashd-only paths: a zcashd + lightwalletd instance behind a gateway ----------------------------------------

ZCASHD = {
    # `history: None` drops the dev instance's history section: a regtest chain has none.
    "testnet": {
        "network": "regtest",
        "node": {"kind": "zcashd", "replicas": 2},
        "endpoints": {"publicGrpc": False},
        "history": None,
    }
}


@pytest.fixture(scope="module")
def zcashd_plan(plan_stack: PlanStack) -> Plan:
    """The dev stack's testnet instance (it has an access file, so a gateway) as regtest zcashd, with the plan's
    secret values left in (the engine masks them; the test needs to compare them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_mask_all", lambda value: value)
        return plan_stack("dev", merge={"zbi:instances": ZCASHD})


def test_every_path_to_zcashds_rpc_uses_its_rpc_port(zcashd_plan: Plan) -> None:
    namespace = "zbi-testnet"
    conf = one(zcashd_plan, "ConfigMap", "zcashd-config", namespace)["data"]["zcash.conf"]
    settings = dict(line.split("=", 1) for line in conf.splitlines() if "=" in line and not line.startswith("#"))
    port = int(settings["rpcport"])
    assert port == 18232  # regtest's RPC port (zcashd chainparamsbase.cpp), written out
    zcashd = one(zcashd_plan, "StatefulSet", "zcashd", namespace)
    (node,) = [c for c in pod_spec(zcashd)["containers"] if c["name"] == "zcashd"]
    assert {p["name"]: p["containerPort"] for p in node["ports"]}["rpc"] == port
    (service_port,) = one(zcashd_plan, "Service", "zcashd-rpc", namespace)["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (port, "rpc")
    wallet = one(zcashd_plan, "StatefulSet", "lightwalletd", namespace)
    (server,) = pod_spec(wallet)["containers"]
    assert f"--rpcport={port}" in server["command"]
    assert any(f"{port}" in " ".join(init["command"]) for init in pod_spec(wallet)["initContainers"])
    gateway_conf = one(zcashd_plan, "ConfigMap", "gateway-config", namespace)["data"]["nginx.conf"]
    assert re.search(rf"server zcashd-rpc\.{namespace}\.svc\.cluster\.local:{port}\b", gateway_conf), gateway_conf
    # ... and the NetworkPolicies let the light-wallet tier and the gateway through on that port, nobody else.
    target = Pod(namespace, zcashd["spec"]["template"]["metadata"]["labels"], ports={"rpc": port})
    policies = objects(zcashd_plan, "NetworkPolicy")
    for kind, name in (("StatefulSet", "lightwalletd"), ("Deployment", "gateway")):
        workload = one(zcashd_plan, kind, name, namespace)
        source = Pod(namespace, workload["spec"]["template"]["metadata"]["labels"], address="10.20.1.1")
        assert reachable(policies, source, target, port), name
    assert not reachable(policies, Pod("other", {}, address="10.20.1.2"), target, port)


def test_the_gateway_presents_the_nodes_credentials_as_user_then_password(zcashd_plan: Plan) -> None:
    """The gateway sends its upstream-auth file as HTTP basic credentials (the live tests prove it); zcashd checks
    them against -rpcuser/-rpcpassword, which come from the same Secret: the file must read `user:password`."""
    namespace = "zbi-testnet"
    credentials = one(zcashd_plan, "Secret", "rpc-credentials", namespace)["stringData"]
    assert credentials["username"] and credentials["password"] and credentials["username"] != credentials["password"]
    upstream = one(zcashd_plan, "Secret", "gateway-upstream", namespace)["stringData"]["upstream-auth"]
    assert upstream == f"{credentials['username']}:{credentials['password']}"
    (node,) = [c for c in pod_spec(one(zcashd_plan, "StatefulSet", "zcashd", namespace))["containers"]]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in node["env"] if "valueFrom" in e}
    assert "-rpcuser=$(RPC_USER)" in node["command"] and "-rpcpassword=$(RPC_PASSWORD)" in node["command"]
    assert env["RPC_USER"] == {"key": "username", "name": "rpc-credentials"}
    assert env["RPC_PASSWORD"] == {"key": "password", "name": "rpc-credentials"}


# ---- signed leading-zero integers in stack files ----------------------------------------------------------------


@pytest.mark.parametrize("written", ["010", "+010", "-010", "-007", "0_10", "+0_10"])
def test_a_signed_leading_zero_integer_is_refused(tmp_path: Path, written: str) -> None:
    """yaml.v3 (Pulumi's reader) resolves a plain integer with Go's strconv.ParseInt(plain, 0, 64), whose base comes
    from the prefix *after the sign*: `+010` is 8 to `pulumi up`, 10 to a YAML 1.2 reader. Refused either way."""
    resolve = (UPSTREAM / "go-yaml" / "resolve.go.txt").read_text()
    assert 'plain := strings.Replace(in, "_", "", -1)' in resolve
    assert "strconv.ParseInt(plain, 0, 64)" in resolve
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(f"config:\n  aws:x: {{n: {written}}}\n")
    with pytest.raises(StackFileError) as caught:
        read_stack_file("bad", path)
    (problem,) = caught.value.problems
    assert "has a leading zero" in problem and "Fix:" in problem, problem


@pytest.mark.parametrize(
    ("written", "value"),
    # yaml.v3 (resolve.go at v3.0.1) strips underscores before strconv.ParseInt(plain, 0, 64): `1_000` is 1000, and a
    # sign may precede a base prefix.
    [
        ("+10", 10),
        ("-10", -10),
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("0o10", 8),
        ("1_000", 1000),
        ("0b101", 5),
        ("-0b1", -1),
        ("+0x10", 16),
        ("0X1f", 31),
        ("-0o7", -7),
    ],
)
def test_signed_integers_without_a_leading_zero_read_as_pulumi_reads_them(
    tmp_path: Path, written: str, value: int
) -> None:
    path = tmp_path / "Pulumi.ok.yaml"
    path.write_text(f"config:\n  aws:x: {{n: {written}}}\n")
    assert read_stack_file("ok", path).config["aws:x"] == {"n": value}


# ---- gateway.minReplicas: two at least, refused at the edge ------------------------------------------------------


def test_a_single_gateway_replica_is_refused_by_zbi_plan(tmp_path: Path) -> None:
    """One gateway replica is one zone's outage away from no access at all (and its PodDisruptionBudget would block
    every node drain): `zbi plan` refuses it with exit 2, naming the key and the fix, before evaluating anything."""
    from tests.stack_input import project_copy, zbi

    project = project_copy(tmp_path)
    shutil.copytree(ROOT / "access", project / "access")
    original = (project / "Pulumi.dev.yaml").read_text()
    anchor = "    testnet:\n      network: testnet\n"
    assert anchor in original
    for replicas, exit_code in ((1, 2), (0, 2)):
        (project / "Pulumi.dev.yaml").write_text(
            original.replace(anchor, f"{anchor}      gateway: {{minReplicas: {replicas}}}\n")
        )
        result = zbi("plan", "dev", cwd=project, timeout=180)
        assert result.returncode == exit_code, (replicas, result.stderr[-2000:])
        if exit_code:
            assert (
                "zbi:instances.testnet.gateway.minReplicas" in result.stderr
                and "Fix: use a value at least 2" in result.stderr
            )
            assert "Traceback" not in result.stderr


def test_the_gateways_minimum_reaches_its_autoscaler(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"gateway": {"minReplicas": 3, "maxReplicas": 5}}}})
    hpa = one(plan, "HorizontalPodAutoscaler", "gateway", "zbi-testnet")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 5)
