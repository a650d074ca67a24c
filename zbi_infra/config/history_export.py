"""`history.export`: the final chain as Parquet tables in S3, catalogued for Athena (zbi_infra/config/history.py).

The defaults, and what each buys and costs, are in docs/history-export-aws.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from zbi_export.schema import partition_value
from zbi_infra.config.base import StrictBool, StrictInt, StrictModel
from zbi_infra.config.image import ImageConfig
from zbi_infra.config.resources import ResourcesConfig

# Cron's five fields, their names in messages and their ranges (Kubernetes CronJob schedules are standard cron).
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
# Athena's smallest per-query data usage control is 10 MB (Athena user guide, "Workgroup data usage controls"); zBI
# counts whole GiB, and above 10 TiB a query costs over $50 at the list price.
MAX_SCAN_LIMIT_GIB = 10 * 1024
# Glue's limit on a table parameter's value (Glue API reference, TableInput.Parameters: 512,000 characters): the
# projected partition list is one.
MAX_PARAMETER_CHARS = 512_000
DEFAULT_RESOURCES = ResourcesConfig(cpu="500m", memory="1Gi", cpu_limit="2", memory_limit="2Gi")


def cron_problem(schedule: str) -> str | None:
    """Why `schedule` is not a five-field cron expression of numbers, `*`, ranges, lists and steps; None if it is."""
    fields = schedule.split()
    if len(fields) != len(CRON_FIELDS):
        return f"{schedule!r} has {len(fields)} fields, cron has 5 (minute hour day-of-month month day-of-week)"
    for text, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"the {name} field {text!r} has step {step!r}; a step is a whole number of at least 1"
            if span == "*":
                continue
            ends = span.split("-")
            if len(ends) > 2 or not all(end.isdigit() for end in ends):
                return f"the {name} field {text!r} is not a number, a range a-b, a list or * (names like MON are not)"
            numbers = [int(end) for end in ends]
            if any(n < low or n > high for n in numbers):
                return f"the {name} field {text!r} is outside {low}-{high}"
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                return f"the {name} field {text!r} is a range that runs backwards"
    return None


class HistoryExportConfig(StrictModel):
    """A CronJob that writes final blocks as Parquet, partitioned by height range."""

    # Export the final chain to S3 as Parquet.
    enabled: StrictBool = False
    # Blocks per partition (one Parquet file per table and height range).
    partition_blocks: StrictInt = Field(default=10_000, ge=100, le=1_000_000)
    # Height up to which the Glue tables list partitions (Athena projects them; none are registered). Mainnet was
    # about 3,444,000 in August 2026 (zebrad 6.3.0's estimate) and grows 1,152 blocks a day: 10 million is ~15 years.
    catalog_max_height: StrictInt = Field(default=10_000_000, ge=1_000_000, le=100_000_000)
    # When the export runs (cron, UTC). A run exports every final block not yet in S3 and exits.
    schedule: Annotated[str, StringConstraints(max_length=100)] = "23 */6 * * *"
    # Longest a run may take, minutes; the next run resumes where it stopped.
    run_deadline_minutes: StrictInt = Field(default=300, ge=10, le=1440)
    # Athena's per-query scan limit, GiB: a query that would read more is cancelled (and billed only what it read).
    scan_limit_gib: StrictInt = Field(default=100, ge=1, le=MAX_SCAN_LIMIT_GIB)
    # Days an overwritten or deleted Parquet object stays recoverable (its noncurrent version) before S3 removes it.
    noncurrent_retention_days: StrictInt = Field(default=30, ge=1, le=3650)
    # Days Athena's query results are kept in the results bucket.
    query_result_retention_days: StrictInt = Field(default=30, ge=1, le=3650)
    # The export program's image, built from images/history-export/Dockerfile and pushed to your registry.
    image: ImageConfig = Field(default_factory=ImageConfig)
    # The export container's requests and limits.
    resources: ResourcesConfig = DEFAULT_RESOURCES

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        problem = cron_problem(schedule)
        if problem:
            raise ValueError(f"{problem}. Fix: write five cron fields, e.g. '23 */6 * * *' (every 6 hours at :23)")
        return schedule

    @model_validator(mode="after")
    def _partitions_fit_the_catalog(self) -> HistoryExportConfig:
        fitting = MAX_PARAMETER_CHARS // (len(partition_value(0, 1)) + 1)
        partitions = -(-self.catalog_max_height // self.partition_blocks)
        if partitions > fitting:
            at_least = -(-self.catalog_max_height // fitting)
            raise ValueError(
                f"partitionBlocks {self.partition_blocks} makes {partitions:,} partitions up to catalogMaxHeight "
                f"{self.catalog_max_height:,}, and a Glue table lists at most {fitting:,}. Fix: partitionBlocks of at "
                f"least {at_least:,}, or a lower catalogMaxHeight"
            )
        return self

    @model_validator(mode="after")
    def _an_image_to_run(self) -> HistoryExportConfig:
        if self.enabled and (self.image.repository is None or (self.image.tag is None and self.image.digest is None)):
            raise ValueError(
                "image: zBI publishes no export image. Fix: build images/history-export/Dockerfile, push it to your "
                "registry, and set image.repository and image.tag (or image.digest)"
            )
        return self
