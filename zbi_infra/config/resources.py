"""Requests and limits of a container, as the stack file writes them (Kubernetes quantities, validated)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints, ValidationInfo, field_validator

from zbi_infra.config.base import StrictModel

CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY_PATTERN = r"^[0-9]+(Mi|Gi)$"
Cpu = Annotated[str, StringConstraints(pattern=CPU_PATTERN)]
Memory = Annotated[str, StringConstraints(pattern=MEMORY_PATTERN)]


def cpu_millis(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def memory_mib(value: str) -> int:
    return int(value[:-2]) * (1024 if value.endswith("Gi") else 1)


class ResourcesConfig(StrictModel):
    """Requests are what the scheduler reserves; limits cap a runaway process (memory limit = OOM kill)."""

    # CPU request (Kubernetes quantity, e.g. 2 or 250m): what the scheduler reserves.
    cpu: Cpu
    # Memory request (Kubernetes quantity, e.g. 8Gi).
    memory: Memory
    # CPU limit, not below the request; omitted, four times the request.
    cpu_limit: Cpu | None = None
    # Memory limit, not below the request (above it the container is OOM-killed); omitted, twice the request.
    memory_limit: Memory | None = None

    @field_validator("cpu", "cpu_limit")
    @classmethod
    def _some_cpu(cls, value: str | None) -> str | None:
        # "0" would let the scheduler pack the pod anywhere and the limit (4x the request) throttle it to nothing.
        if value is not None and cpu_millis(value) < 1:
            raise ValueError(f"{value} is no CPU at all. Fix: request at least 1m (a thousandth of a core)")
        return value

    @field_validator("memory", "memory_limit")
    @classmethod
    def _some_memory(cls, value: str | None) -> str | None:
        if value is not None and memory_mib(value) < 1:
            raise ValueError(f"{value} is no memory at all; the container could not start. Fix: give at least 1Mi")
        return value

    @field_validator("cpu_limit")
    @classmethod
    def _cpu_limit_not_below_request(cls, limit: str | None, info: ValidationInfo) -> str | None:
        request = info.data.get("cpu")
        if limit and request and cpu_millis(limit) < cpu_millis(request):
            raise ValueError(f"cpuLimit {limit} is below cpu {request}. Fix: raise cpuLimit or lower cpu")
        return limit

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_not_below_request(cls, limit: str | None, info: ValidationInfo) -> str | None:
        request = info.data.get("memory")
        if limit and request and memory_mib(limit) < memory_mib(request):
            raise ValueError(f"memoryLimit {limit} is below memory {request}. Fix: raise memoryLimit or lower memory")
        return limit

    def limits(self) -> dict[str, str]:
        # Without an explicit limit, CPU may burst to 4x the request; memory is capped at 2x.
        cpu = self.cpu_limit or f"{cpu_millis(self.cpu) * 4}m"
        memory = self.memory_limit or f"{memory_mib(self.memory) * 2}Mi"
        return {"cpu": cpu, "memory": memory}
