"""Evaluate a stack program under Pulumi's mock runtime and record every resource it registers.

This is the same program `pulumi up` runs (the project's `main`), with the engine replaced by
`pulumi.runtime.set_mocks`: no CLI, no credentials, no network.
"""

from __future__ import annotations

import contextvars
import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from zbi_infra.plan.mocks import PlanMocks
from zbi_infra.plan.project import SECRET_PLACEHOLDER, StackFile

_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_REF_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


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
    aliases: list[str] = field(default_factory=list)


@dataclass
class Plan:
    stack: str
    project: str
    resources: list[PlannedResource]
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> PlannedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name}")
        return matches[0]

    def kubernetes_objects(self) -> list[PlannedResource]:
        return [
            r for r in self.resources if r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:pulumi")
        ]


def mask_secrets(value: Any) -> Any:
    """Turn Pulumi's wire form into plain values, with every secret replaced by a placeholder."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return _mask_all(value.get("value"))
        if sig == _RESOURCE_REF_SIG:
            return {"$ref": value.get("urn")}
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
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


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps each registration as the engine would see it: parent, options, secret markers."""

    def __init__(self, mocks: PlanMocks):
        super().__init__(mocks)
        self.recorded: list[PlannedResource] = []

    def Invoke(self, request):  # noqa: N802 (gRPC method name)
        args = plain_values(json_format.MessageToDict(request.args, preserving_proto_field_name=True))
        result = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        assert isinstance(result, dict), "PlanMocks.call answers with a plain dict"
        return resource_pb2.ResourceInvokeResponse(**{"return": to_struct(result)})

    def ReadResource(self, request):  # noqa: N802 (gRPC method name)
        """Reads (StackReference, `.get`) are recorded like registrations: a plan shows what a stack depends on."""
        urn, _, state = self._register(request, request.properties, custom=True, import_id=request.id)
        return resource_pb2.ReadResourceResponse(urn=urn, properties=to_struct(state))

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=self.make_urn(request.parent, request.type, request.name))
        urn, resource_id, state = self._register(
            request,
            request.object,
            custom=bool(request.custom),
            import_id=request.importId,
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            depends_on=list(request.dependencies),
            aliases=[a.urn or a.spec.name for a in request.aliases],
        )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=to_struct(state))

    def _register(self, request, properties, *, custom: bool, import_id: str, **options: Any):
        urn = self.make_urn(request.parent, request.type, request.name)
        wire = json_format.MessageToDict(properties, preserving_proto_field_name=True)
        # Inputs are handed to the mocks as plain values with resource references as URNs: the SDK's own
        # deserializer would rehydrate referenced resources on this executor thread's event loop.
        mock_id, state = self.mocks.new_resource(
            pulumi_mocks.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=plain_values(wire),
                provider=request.provider,
                resource_id=import_id,
                custom=custom,
            )
        )
        resource_id = mock_id or import_id or ""
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        self.recorded.append(
            PlannedResource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                inputs=mask_secrets(wire),
                custom=custom,
                id=resource_id,
                provider=request.provider or None,
                **options,
            )
        )
        return urn, resource_id, state


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    """Plain values to the wire. Built directly (not with the SDK's async serializer) so the monitor's executor
    threads never need an event loop of their own."""
    struct = struct_pb2.Struct()
    json_format.ParseDict(values, struct)
    return struct


def plain_values(value: Any) -> Any:
    """Wire form to plain values, secrets unwrapped (the mocks compute outputs from real values)."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return plain_values(value.get("value"))
        if sig == _RESOURCE_REF_SIG:
            return value.get("urn")
        return {k: plain_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_values(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def evaluate(
    stack_file: StackFile,
    *,
    program: Path,
    project: str,
    stack_outputs: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Run `program` (a directory with __main__.py, as Pulumi runs it) for `stack_file` under mocks."""
    mocks = PlanMocks(stack_outputs=stack_outputs, stack=stack_file.stack)
    monitor = RecordingMonitor(mocks)
    warnings = _WarningCollector()
    logger = logging.getLogger(f"zbi.plan.{stack_file.stack}.{id(monitor)}")
    logger.propagate = False
    logger.addHandler(warnings)

    def run() -> Plan:
        pulumi.runtime.set_all_config(
            # Pulumi hands structured config values to programs as JSON text.
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_file.config.items()},
            list(stack_file.secret_keys),
        )
        pulumi.runtime.set_mocks(
            mocks, project=project, stack=stack_file.stack, preview=False, monitor=monitor, logger=logger
        )

        def program_body() -> None:
            runpy.run_path(str(program), run_name="__main__")

        _sync_await(run_pulumi_func(program_body))
        # Registration order depends on thread scheduling; URN order does not.
        resources = sorted(monitor.recorded, key=lambda r: r.urn)
        return Plan(stack=stack_file.stack, project=project, resources=resources, warnings=warnings.messages)

    # A fresh context per evaluation: Pulumi keeps its root stack and config in context variables.
    return contextvars.Context().run(run)


class _WarningCollector(logging.Handler):
    """Keeps what the program logs at warning level (pulumi.log.warn), for the plan to show."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
