"""The README's contents list and architecture diagram cannot drift from the README and the components."""

from __future__ import annotations

import re

from tests.conftest import ROOT, PlanStack
from zbi_infra.plan.diagram import BEGIN, END, mermaid, readme_block


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_diagram_is_the_one_the_dev_plan_generates(plan_stack: PlanStack) -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    plan = plan_stack("dev")
    assert readme[start:end] == readme_block(plan), "run: python -m zbi_infra.plan.diagram dev, paste into README"
    text = mermaid(plan)
    # Every component the program registers is a box; every public load balancer an edge from the clients.
    for component in [r for r in plan.resources if r.type.startswith("zbi:")]:
        assert f"{component.type.split(':')[-1]} {component.name}" in text
    balancers = [
        r for r in plan.of_type("kubernetes:core/v1:Service") if r.inputs["spec"].get("type") == "LoadBalancer"
    ]
    assert text.count("clients -->|") == len(balancers) > 0


def test_the_diagram_follows_the_stack(plan_stack: PlanStack) -> None:
    text = mermaid(plan_stack("dev", merge={"zbi:instances": {"extra": {"network": "testnet"}}}))
    assert "ZcashNode extra<br/><small>StatefulSet lightwalletd<br/>StatefulSet zebrad</small>" in text
    assert "ZbiPlatform_dev --> ZcashNode_extra" in text


def test_the_contents_list_names_every_section_and_every_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    contents = readme.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"^- \[[^\]]+\]\(#([^)]+)\)$", contents, flags=re.MULTILINE)
    headings = [h for h in re.findall(r"^## (.+)$", readme, flags=re.MULTILINE) if h != "Contents"]
    assert links == [slug(h) for h in headings]
    assert readme.index("## Contents") < readme.index("## Architecture") < readme.index("## Layout")


def test_the_dr_runbooks_way_to_kubectl_names_real_keys_and_the_dr_clusters_own_names(plan_stack: PlanStack) -> None:
    import yaml

    runbook = (ROOT / "docs" / "disaster-recovery.md").read_text()
    section = runbook.split("## Reaching the DR cluster with kubectl", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    endpoint = yaml.safe_load(snippet.replace("<your egress range>/32", "8.8.4.0/24"))["zbi:cluster"]["endpoint"]
    plan = plan_stack("dr", merge={"zbi:cluster": {"endpoint": endpoint, "nodeSsmAccess": True}})
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["endpointPublicAccess"] is True and cluster.inputs["publicAccessCidrs"] == ["8.8.4.0/24"]
    dr = yaml.safe_load((ROOT / "Pulumi.dr.yaml").read_text())["config"]
    name, region = dr["zbi:cluster"]["name"], dr["zbi:platform"]["region"]
    assert f"--name {name} --region {region}" in section
    assert f"--role-arn {dr['zbi:cluster']['admins'][0]['principalArn']}" in section  # an admin of that cluster
    assert 'pulumi.export("kubeconfig"' in (ROOT / "stacks" / "__main__.py").read_text()
