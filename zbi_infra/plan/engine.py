"""Evaluate a stack program under Pulumi's mock runtime and record every resource it registers.

This is the same program `pulumi up` runs (the project's `main`), with the engine replaced by Pulumi's public
testing API: `pulumi.runtime.set_mocks` answers registrations and invokes, `pulumi.runtime.test` runs the program to
completion, and a stack transformation (`pulumi.runtime.register_stack_transformation`) sees each resource's parent
and options as the SDK hands them over. No CLI, no credentials, no network.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.mocks

from zbi_infra.plan.mocks import PlanMocks
from zbi_infra.plan.project import SECRET_PLACEHOLDER, StackFile

# Pulumi's wire markers (the SDK's rpc module writes them; they are part of the engine protocol).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
ROOT_TYPE = "pulumi:pulumi:Stack"


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    custom: bool
    id: str | None = None
    protect: bool = False
    retain_on_delete: bool = False
    provider: str | None = None
    depends_on: list[str] = field(default_factory=list)
    # URNs this resource was known by before (its own aliases and those inherited from its parents).
    aliases: list[str] = field(default_factory=list)


@dataclass
class Plan:
    stack: str
    project: str
    resources: list[PlannedResource]
    warnings: list[str] = field(default_factory=list)
    # (token, arguments) of every invoke the program made, in order: what it asked the cloud.
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> PlannedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name}")
        return matches[0]

    def kubernetes_objects(self) -> list[PlannedResource]:
        return [
            # Not the provider's own types (module "pulumi"); custom resources of the pulumi.com group are objects.
            r
            for r in self.resources
            if r.type.startswith("kubernetes:") and r.type.split(":")[1] != "pulumi"
        ]


def make_urn(stack: str, project: str, qualified_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{project}::{qualified_type}::{name}"


def mask_secrets(value: Any, refs: dict[int, str]) -> Any:
    """Plain values for the plan: every secret replaced by a placeholder, resources by their URN."""
    if isinstance(value, pulumi.Resource):
        return {"$ref": refs.get(id(value), "[resource]")}
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            return _mask_all(value.get("value"))
        return {k: mask_secrets(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, refs) for v in value]
    if value == _UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mask_all(value: Any) -> Any:
    """A secret map keeps its keys (a Secret's key names are not secret), every value is masked."""
    if isinstance(value, dict) and value.get(_SIG) is None:
        return {k: _mask_all(v) for k, v in value.items()}
    return SECRET_PLACEHOLDER


def plain_values(value: Any, refs: dict[int, str]) -> Any:
    """Secrets unwrapped and resources as their URN: what the mocks compute outputs from."""
    if isinstance(value, pulumi.Resource):
        return refs.get(id(value), "")
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            return plain_values(value.get("value"), refs)
        return {k: plain_values(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_values(v, refs) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class _Declared:
    """A resource as the SDK constructed it (from the stack transformation)."""

    type: str
    name: str
    parent: pulumi.Resource | None
    opts: pulumi.ResourceOptions
    urn: str = ""


class Recorder(pulumi.runtime.Mocks):
    """Answers through `PlanMocks` and keeps what each registration looked like."""

    def __init__(self, mocks: PlanMocks, *, stack: str, project: str):
        self.mocks = mocks
        self.stack = stack
        self.project = project
        self.declared: dict[int, _Declared] = {}
        self.by_identity: dict[tuple[str, str], list[_Declared]] = {}
        self.refs: dict[int, str] = {}
        self.registered: list[tuple[_Declared | None, pulumi.runtime.MockResourceArgs]] = []
        self.ids: dict[tuple[str, str], str | None] = {}
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    # -- the stack transformation: parents and options ----------------------------------------------------------

    def transformation(self, args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        if opts.urn:
            # A resource reference being rehydrated (an input that names another resource), not a registration.
            self.refs[id(args.resource)] = opts.urn
            return None
        declared = _Declared(type=args.type_, name=args.name, parent=opts.parent, opts=opts)
        declared.urn = self._urn(declared)
        self.declared[id(args.resource)] = declared
        self.refs[id(args.resource)] = declared.urn
        self.by_identity.setdefault((args.type_, args.name), []).append(declared)
        return None

    def _qualified_type(self, declared: _Declared) -> str:
        parent = self.declared.get(id(declared.parent)) if declared.parent is not None else None
        return f"{self._qualified_type(parent)}${declared.type}" if parent else declared.type

    def _urn(self, declared: _Declared) -> str:
        return make_urn(self.stack, self.project, self._qualified_type(declared), declared.name)

    # -- pulumi.runtime.Mocks ------------------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        matches = self.by_identity.get((args.typ, args.name), [])
        declared = matches.pop(0) if matches else None
        self.registered.append((declared, args))
        plain = pulumi.runtime.MockResourceArgs(
            typ=args.typ,
            name=args.name,
            inputs=plain_values(args.inputs, self.refs),
            provider=args.provider,
            resource_id=args.resource_id,
            custom=args.custom,
        )
        resource_id, state = self.mocks.new_resource(plain)
        self.ids[(args.typ, args.name)] = resource_id
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        plain = pulumi.runtime.MockCallArgs(
            token=args.token, args=plain_values(args.args, self.refs), provider=args.provider
        )
        self.invokes.append((args.token, plain.args))
        return self.mocks.call(plain)

    # -- the plan ------------------------------------------------------------------------------------------------

    def resources(self) -> list[PlannedResource]:
        planned = []
        for declared, args in self.registered:
            if declared is None:
                raise RuntimeError(f"{args.typ} {args.name} registered without passing the stack transformation")
            opts = declared.opts
            parent = self.declared.get(id(declared.parent)) if declared.parent is not None else None
            planned.append(
                PlannedResource(
                    urn=declared.urn,
                    type=args.typ,
                    name=args.name,
                    parent=parent.urn if parent else None,
                    inputs=mask_secrets(args.inputs, self.refs),
                    custom=bool(args.custom),
                    id=self.ids.get((args.typ, args.name)),
                    protect=bool(opts.protect),
                    retain_on_delete=bool(opts.retain_on_delete),
                    provider=args.provider or None,
                    depends_on=[
                        self.refs.get(id(d), "")
                        for d in (opts.depends_on or [])  # type: ignore[union-attr]
                        if isinstance(d, pulumi.Resource)
                    ],
                    aliases=sorted(self._alias_urns(declared)),
                )
            )
        return sorted(planned, key=lambda r: r.urn)

    def _alias_urns(self, declared: _Declared) -> set[str]:
        """The URNs the engine would match this resource against: its aliases, and every URN its parent had.

        In a `pulumi.Alias`, `...` means "as now" and `parent=None` (ROOT_STACK_RESOURCE) means "no parent"."""
        found: set[str] = set()
        parent = self.declared.get(id(declared.parent)) if declared.parent is not None else None
        for alias in declared.opts.aliases or []:
            if isinstance(alias, str):
                found.add(alias)
                continue
            if not isinstance(alias, pulumi.Alias):
                raise TypeError(f"{declared.type} {declared.name}: an alias given as an Output cannot be planned")
            name = declared.name if alias.name is ... or alias.name is None else str(alias.name)
            type_ = declared.type if alias.type_ is ... or alias.type_ is None else str(alias.type_)
            if alias.parent is ...:
                parent_type = self._qualified_type(parent) if parent else None
            elif alias.parent is None:
                parent_type = None
            elif isinstance(alias.parent, pulumi.Resource):
                old_parent = self.declared.get(id(alias.parent))
                parent_type = self._qualified_type(old_parent) if old_parent else None
            else:
                parent_type = str(alias.parent).split("::")[2]
            found.add(make_urn(self.stack, self.project, f"{parent_type}${type_}" if parent_type else type_, name))
        if parent is not None:
            for parent_urn in self._alias_urns(parent):
                parent_type = parent_urn.split("::")[2]
                found.add(make_urn(self.stack, self.project, f"{parent_type}${declared.type}", declared.name))
        return found


class ReferencesAsIds(pulumi.runtime.mocks.MockMonitor):
    """The SDK's mock monitor, telling the program it cannot take resource references.

    The program then sends a referenced resource as its ID (or a component's URN), as it does for engines without
    the feature. With references, the stock monitor rehydrates each referenced resource on its executor thread,
    where the resource's own lookup lands on another event loop than the program's and fails at random. The
    override leaves every other feature as the SDK's monitor declares it (`SupportsFeature` in older SDKs,
    `GetDeploymentInfo` in newer ones), read through protobuf's descriptor API."""

    _FEATURE = "resourceReferences"
    _FEATURE_ENUM = "RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES"

    def SupportsFeature(self, request):  # noqa: N802 (gRPC method name)
        response = super().SupportsFeature(request)
        if request.id == self._FEATURE:
            return type("SupportsFeatureResponse", (object,), {"hasSupport": False})
        return response

    def GetDeploymentInfo(self, request):  # noqa: N802 (gRPC method name)
        info = super().GetDeploymentInfo(request)
        field = info.DESCRIPTOR.fields_by_name["supportedFeatures"]
        unsupported = field.enum_type.values_by_name[self._FEATURE_ENUM].number
        kept = [feature for feature in info.supportedFeatures if feature != unsupported]
        del info.supportedFeatures[:]
        info.supportedFeatures.extend(kept)
        return info


def evaluate(
    stack_file: StackFile,
    *,
    program: Path,
    project: str,
    stack_outputs: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Run `program` (a directory with __main__.py, as Pulumi runs it) for `stack_file` under mocks."""
    recorder = Recorder(
        PlanMocks(stack_outputs=stack_outputs, stack=stack_file.stack), stack=stack_file.stack, project=project
    )
    warnings = _WarningCollector()
    logger = logging.getLogger(f"zbi.plan.{stack_file.stack}.{id(recorder)}")
    logger.propagate = False
    logger.addHandler(warnings)

    def run() -> Plan:
        pulumi.runtime.set_mocks(
            recorder,
            project=project,
            stack=stack_file.stack,
            preview=False,
            logger=logger,
            monitor=ReferencesAsIds(recorder),
        )

        @pulumi.runtime.test
        def program_body() -> None:
            pulumi.runtime.register_stack_transformation(recorder.transformation)
            runpy.run_path(str(program), run_name="__main__")

        program_body()
        return Plan(
            stack=stack_file.stack,
            project=project,
            resources=recorder.resources(),
            warnings=warnings.messages,
            invokes=recorder.invokes,
        )

    # Config reaches the program as the engine hands it over: the PULUMI_CONFIG environment variable, structured
    # values as JSON text.
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_file.config.items()}
    environment = {
        "PULUMI_CONFIG": json.dumps(values),
        "PULUMI_CONFIG_SECRET_KEYS": json.dumps(sorted(stack_file.secret_keys)),
    }
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        # A fresh context per evaluation: Pulumi keeps its root stack and settings in context variables.
        return contextvars.Context().run(run)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _WarningCollector(logging.Handler):
    """Keeps what the program logs at warning level (pulumi.log.warn), for the plan to show."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
