"""The price table `yunpipe cost` reads: the user's refreshed one (<YUNPIPE_HOME>/prices.json)
when there is one, else the one yunpipe ships; and its refresh from the AWS Price List API.

The refreshed table stays on this machine: the runs' summaries in the cloud are priced with the
shipped table (in the launcher's zip and the worker's image, which `wrap` builds, so shipping a
refreshed one with setup-pipe would give one pipeline two tables), and each summary says which
table it used. `yunpipe cost` prices a run still open with this one; a settled run keeps the cost
its summary recorded.
"""
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from yunpipe import paths
from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AWS, Location
from yunpipe.errors import InputError
from yunpipe.runtime import contract
from yunpipe.runtime.accounting import cost

# The Price List API answers in us-east-1 (and eu-central-1, ap-south-1), whatever region it prices.
PRICING_REGION = "us-east-1"
# A usage type, with or without its region's prefix (USE2-, EUC1-; us-east-1's often has none).
_PREFIX = r"(?:^|^[A-Z0-9]+-)"
# (table item, field) <- (service code, usage type pattern). The first paid tier of each is taken
# (SQS's first million requests a month, for example, are free).
USAGE_TYPES: dict[str, dict[tuple[str, str], str]] = {
    "AmazonECS": {("fargate", "vcpu_hour"): _PREFIX + r"Fargate-vCPU-Hours:perCPU$",
                  ("fargate", "gb_hour"): _PREFIX + r"Fargate-GB-Hours$",
                  ("fargate_spot", "vcpu_hour"): _PREFIX + r"SpotUsage[-:]Fargate-vCPU-Hours:perCPU$",
                  ("fargate_spot", "gb_hour"): _PREFIX + r"SpotUsage[-:]Fargate-GB-Hours$"},
    "AWSLambda": {("lambda", "gb_second"): _PREFIX + r"Lambda-GB-Second$",
                  ("lambda", "request"): _PREFIX + r"Request$"},
    "AWSQueueService": {("sqs", "request"): _PREFIX + r"Requests-RBP$"},
    "AmazonS3": {("s3", "put_request"): _PREFIX + r"Requests-Tier1$",
                 ("s3", "get_request"): _PREFIX + r"Requests-Tier2$",
                 ("s3", "gb_month"): _PREFIX + r"TimedStorage-ByteHrs$"},
    "AmazonCloudWatch": {("logs", "gb_ingested"): _PREFIX + r"DataProcessing-Bytes$",
                         ("logs", "gb_month"): _PREFIX + r"TimedStorage-ByteHrs$"},
}
EC2_FILTERS = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def user_table() -> Path:
    return paths.home() / "prices.json"


def load() -> tuple[dict[str, Any], str]:
    """The table in use, and where it was read from."""
    path = user_table()
    if path.is_file():
        try:
            return cost.load_prices(str(path)), str(path)
        except (ValueError, KeyError) as error:
            raise InputError(str(path), "", f"expected a price table written by `yunpipe prices --refresh` ({error}); "
                                            "remove it to use the shipped one") from None
    return cost.load_prices(), cost.PRICES_FILE


def check_region(table: Mapping[str, Any], region: str) -> None:
    valid_region(region)
    if region not in table["regions"]:
        raise InputError("--region", "", f"expected one of the table's regions ({', '.join(table['regions'])}), "
                                         f"got '{region}'; `yunpipe prices --refresh --region {region}` adds it")


def valid_region(region: str) -> str:
    if not re.match(contract.REGION_PATTERN, region):
        raise InputError("--region", "", f"expected an AWS region such as us-east-1, got {region!r}")
    return region


def open_pricing(profile: str | None, endpoint_url: str | None) -> Aws:
    """The facade for the Price List API: AWS itself, whatever cloud the pipelines use (neither
    the local cloud's emulator nor LocalStack has it)."""
    return Location(AWS, endpoint_url, PRICING_REGION, profile).open()


def _filters(region: str, **fields: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in {"regionCode": region, **fields}.items()]


def products(aws: Aws, service: str, filters: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
    """Each product of GetProducts' answer (its PriceList holds JSON documents as strings)."""
    client = aws.client("pricing", region=PRICING_REGION)
    for page in client.get_paginator("get_products").paginate(ServiceCode=service, Filters=filters,
                                                               FormatVersion="aws_v1"):
        for item in page.get("PriceList", []):
            yield json.loads(item) if isinstance(item, str) else item


def first_paid_price(product: Mapping[str, Any]) -> float | None:
    """The On-Demand price of the product's lowest tier that is not free, in USD."""
    tiers = []
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            price = float(dimension.get("pricePerUnit", {}).get("USD", "0") or 0)
            tiers.append((float(dimension.get("beginRange", "0") or 0), price))
    paid = sorted(tier for tier in tiers if tier[1] > 0)
    return paid[0][1] if paid else None


def refresh_region(aws: Aws, region: str, instance_types: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The region's figures from the Price List API, and what it did not find."""
    found: dict[str, Any] = {}
    for service, wanted in USAGE_TYPES.items():
        for product in products(aws, service, _filters(region)):
            usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
            for (item, field), pattern in wanted.items():
                price = first_paid_price(product) if re.search(pattern, usage) else None
                if price is not None and field not in found.get(item, {}):
                    found.setdefault(item, {})[field] = price
    for name in instance_types:
        for product in products(aws, "AmazonEC2", _filters(region, instanceType=name, **EC2_FILTERS)):
            usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
            price = first_paid_price(product) if re.search(_PREFIX + r"BoxUsage:" + re.escape(name) + "$", usage) else None
            if price is not None:
                found.setdefault("ec2", {})[name] = price
                break
    missing = [f"{item}.{field}" for wanted in USAGE_TYPES.values() for item, field in wanted
               if field not in found.get(item, {})]
    missing += [f"ec2.{name}" for name in instance_types if name not in found.get("ec2", {})]
    return found, missing


def refresh(aws: Aws, table: Mapping[str, Any], regions: list[str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The table with `regions` read anew (what the Price List API lacks is kept as it was, and
    Fargate Spot, which it may not list, stays an estimate from on-demand), and what each lacked."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    updated = json.loads(json.dumps(table))
    lacking = {}
    for region in regions:
        found, missing = refresh_region(aws, region, sorted(table.get("instance_types", {})))
        entry = updated["regions"].setdefault(region, {})
        if "fargate" in found and "fargate_spot" not in found:
            found["fargate_spot"] = {k: round(v * 0.3, 8) for k, v in found["fargate"].items()}
        for item, figures in found.items():
            entry[item] = {**entry.get(item, {}), **figures}
        entry["date"] = today
        entry["source"] = "AWS Price List API (pricing GetProducts), On-Demand, Linux/x86" + (
            f"; not found there, kept: {', '.join(missing)}" if missing else "")
        lacking[region] = missing
    return updated, lacking


def dump(table: Mapping[str, Any]) -> str:
    """The table as JSON a person can read: one line per item of a region."""
    text = json.dumps(table, indent=2)
    # An object of plain values (an item's figures, an instance type's size) on one line.
    return re.sub(r"\{\n\s+([^{}\[\]]*?)\n\s*\}", lambda m: "{" + " ".join(m.group(1).split()) + "}", text) + "\n"


def save(table: Mapping[str, Any]) -> Path:
    path = user_table()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump(table))
    tmp.replace(path)
    return path


def figure(value: Any) -> str:
    """A price as written on AWS's pages (0.0000166667, not 1.66667e-05)."""
    return f"{value:.10f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def render(table: Mapping[str, Any], where: str, region: str | None) -> str:
    """The table's date, source and figures: Fargate and Spot of every region, or everything of one."""
    lines = [f"Price table: {where}", f"  date: {table.get('date')}", f"  source: {table.get('source')}",
             f"  currency: {table.get('currency', 'USD')}"]
    regions = [region] if region else list(table["regions"])
    if not region:
        lines += ["", f"{'region':<16}{'Fargate vCPU-h':>16}{'GB-h':>10}{'Spot vCPU-h':>14}{'GB-h':>10}  as of"]
        for name in regions:
            entry = table["regions"][name]
            fargate, spot = entry.get("fargate", {}), entry.get("fargate_spot", {})
            lines.append(f"{name:<16}{figure(fargate.get('vcpu_hour', '-')):>16}{figure(fargate.get('gb_hour', '-')):>10}"
                         f"{figure(spot.get('vcpu_hour', '-')):>14}{figure(spot.get('gb_hour', '-')):>10}  "
                         f"{entry.get('date', table.get('date'))}")
        lines += ["", "Each region's EC2, Lambda, SQS, S3 and Logs prices: yunpipe prices --region REGION"]
        return "\n".join(lines)
    entry = table["regions"][region]
    lines += ["", f"{region} (as of {entry.get('date', table.get('date'))})"]
    for item in ("fargate", "fargate_spot", "lambda", "sqs", "s3", "logs"):
        used, figures = cost.item_prices(table, region, item)
        if figures:
            shown = ", ".join(f"{k} {figure(v)}" for k, v in figures.items())
            lines.append(f"  {item:<13}{shown}" + (f"  (from {used}: none recorded for {region})" if used != region else ""))
    used, ec2 = cost.item_prices(table, region, "ec2")
    if ec2:
        lines.append(f"  ec2 per hour{'' if used == region else f' (from {used}: none recorded for {region})'}:")
        for name, hourly in ec2.items():
            size = table.get("instance_types", {}).get(name, {})
            gpus = f", {size['gpu']} GPU" if size.get("gpu") else ""
            lines.append(f"    {name:<15}{figure(hourly):>8}  ({size.get('vcpu')} vCPU, {size.get('memory_gib')} GiB{gpus})")
    lines += [f"  note: {note}" for note in table.get("notes", [])]
    return "\n".join(lines)
