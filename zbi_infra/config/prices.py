"""The prices `zbi cost` multiplies by (`zbi_infra/data/aws-prices.json`, or `--prices FILE` in its shape), validated
once: every price a finite number above zero (a zero, negative, NaN or infinite price makes every total meaningless,
and a negated file would pass `--check`), a 1-year reservation never dearer than on demand, no unknown key."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from zbi_infra.config.base import StrictModel
from zbi_infra.config.errors import describe
from zbi_infra.errors import ConfigError

PRICES_FILE = "prices file"
# The longest month has 744 hours; AWS prices a month as 730.
MAX_HOURS_PER_MONTH = 744
# Above a million dollars for one unit, a price is a typo (cents for dollars, an extra zero run).
MAX_PRICE = 1_000_000.0
MAX_PRICES_BYTES = 1024 * 1024


def _finite_price(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{value!r} is not a price. Fix: write the price in dollars, a number above 0")
    if value > MAX_PRICE:
        raise ValueError(f"{value!r} is over ${MAX_PRICE:,.0f} for one unit. Fix: write the price in dollars")
    return float(value)


# Integers are prices too (`"kmsKeyMonth": 1`); booleans and text are not (pydantic's strict float refuses them).
Price = Annotated[float, Field(strict=True), AfterValidator(_finite_price)]


class Ec2Price(StrictModel):
    on_demand: Price
    reserved1y: Price = Field(alias="reserved1y")  # to_camel would spell it reserved1Y

    @model_validator(mode="after")
    def _reservation_is_cheaper(self) -> Ec2Price:
        if self.reserved1y > self.on_demand:
            raise ValueError(
                f"reserved1y {self.reserved1y} is above onDemand {self.on_demand}, and --check budgets for reserved "
                "capacity. Fix: write the 1-year reserved hourly price, which is below on demand"
            )
        return self


class PriceFile(StrictModel):
    region: str
    also_for: list[str] = Field(default_factory=list)
    currency: Literal["USD"] = "USD"
    date: str
    source: list[str] = Field(default_factory=list)
    note: str = ""
    hours_per_month: Annotated[float, Field(strict=True, ge=672, le=MAX_HOURS_PER_MONTH)]
    ec2: dict[str, Ec2Price]
    eks_cluster_hour: Price
    ebs_gp3_gib_month: Price
    ebs_gp3_iops_month_above3000: Price
    ebs_gp3_mibps_month_above125: Price
    snapshot_gib_month: Price
    # Fast snapshot restore: one snapshot enabled in one zone for an hour (a DSU-hour), billed per minute, an hour at
    # least (AWS EBS user guide, "Pricing and Billing" of fast snapshot restore: $0.75 in us-east-1).
    ebs_fast_snapshot_restore_hour: Price
    inter_region_transfer_gib: Price
    nat_gateway_hour: Price
    nat_gateway_processed_gib: Price
    public_ipv4_hour: Price
    internet_egress_gib: Price
    nlb_hour: Price
    nlb_lcu_hour: Price
    route53_hosted_zone_month: Price
    route53_health_check_month: Price
    route53_million_queries: Price
    kms_key_month: Price
    kms_ten_thousand_requests: Price
    logs_ingested_gib: Price
    logs_stored_gib_month: Price
    # The history export (zbi_infra/cost_history_export.py): optional, so a prices file written before it still loads.
    s3_standard_gib_month: Price | None = None
    athena_tb_scanned: Price | None = None


def parse_prices(document: object, source: str) -> dict[str, Any]:
    """The prices, validated, as the estimate reads them (the file's own keys)."""
    if not isinstance(document, dict):
        raise ConfigError(
            [f"{source}: not a JSON object. Fix: use zbi_infra/data/aws-prices.json's shape"], what=PRICES_FILE
        )
    try:
        return PriceFile.model_validate(document).model_dump(by_alias=True)
    except ValidationError as exc:
        raise describe(PriceFile, exc, prefix=f"{source}: ", where=source, what=PRICES_FILE) from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def read_prices(path: Path) -> dict[str, Any]:
    source = f"--prices {path}"
    # A device or a pipe (/dev/zero, a FIFO) would be read forever: only a regular file of sensible size is read.
    if path.exists() and not path.is_file():
        raise ConfigError([f"{source}: not a regular file. Fix: give a JSON file"], what=PRICES_FILE)
    if path.is_file() and path.stat().st_size > MAX_PRICES_BYTES:
        raise ConfigError([f"{source}: over {MAX_PRICES_BYTES} bytes. Fix: give a prices file"], what=PRICES_FILE)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"{source}: cannot be read ({exc.strerror}). Fix: give a readable JSON file"], what=PRICES_FILE
        ) from None
    try:
        # NaN and Infinity are not JSON (RFC 8259), though Python's reader takes them.
        document = json.loads(data.decode("utf-8-sig"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: not UTF-8 text (byte {data[exc.start]:#04x}). Fix: save the file as UTF-8 JSON"],
            what=PRICES_FILE,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            [f"{source}: not JSON ({str(exc)[:120]}). Fix: use zbi_infra/data/aws-prices.json's shape"],
            what=PRICES_FILE,
        ) from None
    return parse_prices(document, source)
