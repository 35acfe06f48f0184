"""`yunpipe prices` and its refresh from the AWS Price List API.

The Price List API cannot be reached from here and moto has no pricing service, so the refresh is
fed by botocore's Stubber with answers in GetProducts' documented format (FormatVersion aws_v1:
each PriceList entry a JSON document of product, attributes and OnDemand terms); the real service
has not been called by these tests. Without credentials or network the command fails in one line.
"""
import json

import boto3
import pytest
from botocore.stub import Stubber
from helpers import free_port

from yunpipe import cli
from yunpipe.aws.facade import Aws
from yunpipe.operations import prices
from yunpipe.runtime.accounting import cost


def product(service, usagetype, *tiers, **attributes):
    """One PriceList entry as GetProducts returns it; `tiers` are (beginRange, USD) pairs."""
    sku = f"SKU{abs(hash((service, usagetype))) % 10**8}"
    dimensions = {f"{sku}.JRTCKXETXF.{index}": {
        "unit": "Hrs", "beginRange": str(begin), "endRange": "Inf", "description": usagetype, "appliesTo": [],
        "rateCode": f"{sku}.JRTCKXETXF.{index}", "pricePerUnit": {"USD": f"{price:.10f}"}}
        for index, (begin, price) in enumerate(tiers)}
    return json.dumps({
        "product": {"productFamily": "Compute", "sku": sku,
                    "attributes": {"servicecode": service, "regionCode": "eu-west-1", "usagetype": usagetype,
                                   **attributes}},
        "serviceCode": service,
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": dimensions, "sku": sku,
                                                       "effectiveDate": "2026-11-01T00:00:00Z",
                                                       "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"})


def answers(region="eu-west-1"):
    """(service, filters, pages of PriceList) in the order refresh asks."""
    where = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    ec2 = where + [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in
                   {"instanceType": "g4dn.xlarge", **prices.EC2_FILTERS}.items()]
    return [
        ("AmazonECS", where, [[product("AmazonECS", "EU-Fargate-ARM-vCPU-Hours:perCPU", (0, 0.03238)),
                               product("AmazonECS", "EU-Fargate-vCPU-Hours:perCPU", (0, 0.04048))],
                              [product("AmazonECS", "EU-Fargate-GB-Hours", (0, 0.004445)),
                               product("AmazonECS", "EU-Fargate-EphemeralStorage-GB-Hours", (0, 0.000111))]]),
        ("AWSLambda", where, [[product("AWSLambda", "EU-Lambda-GB-Second", (0, 0.0000166667), (6e9, 0.0000150000)),
                               product("AWSLambda", "EU-Lambda-GB-Second-ARM", (0, 0.0000133334)),
                               product("AWSLambda", "EU-Request", (0, 0.0000002))]]),
        # The first million requests a month are free: the first paid tier is the price.
        ("AWSQueueService", where, [[product("AWSQueueService", "EU-Requests-FIFO-RBP", (0, 0), (1e6, 0.0000005)),
                                     product("AWSQueueService", "EU-Requests-RBP", (0, 0), (1e6, 0.0000004))]]),
        # No Requests-Tier2 (GET): kept as it was.
        ("AmazonS3", where, [[product("AmazonS3", "EU-Requests-Tier1", (0, 0.000005)),
                              product("AmazonS3", "EU-TimedStorage-SIA-ByteHrs", (0, 0.0125)),
                              product("AmazonS3", "EU-TimedStorage-ByteHrs", (0, 0.023), (51200, 0.022))]]),
        ("AmazonCloudWatch", where, [[product("AmazonCloudWatch", "EU-DataProcessing-Bytes", (0, 0.57)),
                                      product("AmazonCloudWatch", "EU-TimedStorage-ByteHrs", (0, 0.03))]]),
        ("AmazonEC2", ec2, [[product("AmazonEC2", "EU-DedicatedUsage:g4dn.xlarge", (0, 0.646)),
                             product("AmazonEC2", "EU-BoxUsage:g4dn.xlarge", (0, 0.587))]]),
    ]


@pytest.fixture
def stubbed(aws_env):
    """The facade refresh uses, its pricing client answering from `answers` (and checking each request)."""
    aws = Aws(boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"))
    client = aws.client("pricing", region=prices.PRICING_REGION)
    assert client.meta.region_name == "us-east-1"
    stubber = Stubber(client)
    for service, filters, pages in answers():
        for index, page in enumerate(pages):
            params = {"ServiceCode": service, "Filters": filters, "FormatVersion": "aws_v1"}
            if index:
                params["NextToken"] = f"page-{index}"
            response = {"FormatVersion": "aws_v1", "PriceList": page}
            if index < len(pages) - 1:
                response["NextToken"] = f"page-{index + 1}"
            stubber.add_response("get_products", response, params)
    with stubber:
        yield aws
        stubber.assert_no_pending_responses()


def small_table():
    table = cost.load_prices()
    table["instance_types"] = {"g4dn.xlarge": table["instance_types"]["g4dn.xlarge"]}
    table["regions"]["eu-west-1"]["s3"]["get_request"] = 0.123  # a figure the answers lack, to see it kept
    return table


def test_refresh_reads_each_figure_from_the_price_lists_answers(stubbed):
    table, lacking = prices.refresh(stubbed, small_table(), ["eu-west-1"])
    entry = table["regions"]["eu-west-1"]
    assert entry["fargate"] == {"vcpu_hour": 0.04048, "gb_hour": 0.004445}
    # Not in the answers: an estimate from on-demand, as the shipped table's.
    assert entry["fargate_spot"] == {"vcpu_hour": 0.012144, "gb_hour": 0.0013335}
    assert entry["lambda"] == {"gb_second": 0.0000166667, "request": 0.0000002}
    assert entry["sqs"] == {"request": 0.0000004}
    assert entry["s3"] == {"put_request": 0.000005, "get_request": 0.123, "gb_month": 0.023}
    assert entry["logs"] == {"gb_ingested": 0.57, "gb_month": 0.03}
    assert entry["ec2"] == {"g4dn.xlarge": 0.587}
    assert lacking == {"eu-west-1": ["fargate_spot.vcpu_hour", "fargate_spot.gb_hour", "s3.get_request"]}
    assert "AWS Price List API" in entry["source"] and "s3.get_request" in entry["source"] and entry["date"]
    # The other regions are as they were.
    assert table["regions"]["us-east-1"] == cost.load_prices()["regions"]["us-east-1"]


def test_prices_refresh_writes_the_users_table_which_cost_then_reads(stubbed, monkeypatch, capsys):
    monkeypatch.setattr(prices, "open_pricing", lambda profile, endpoint_url: stubbed)
    load = prices.load
    monkeypatch.setattr(prices, "load", lambda: (small_table(), cost.PRICES_FILE))
    assert cli.main(["prices", "--refresh", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert "eu-west-1: the Price List API had no fargate_spot.vcpu_hour, fargate_spot.gb_hour, s3.get_request" in out
    assert f"into {prices.user_table()}" in out and "ec2 per hour:" in out and "g4dn.xlarge       0.587" in out
    written, where = load()
    assert where == str(prices.user_table())
    assert written["regions"]["eu-west-1"]["ec2"] == {"g4dn.xlarge": 0.587}
    # The run's assumptions name the refreshed region's own date and source.
    task = {"id": "t", "step": "a", "cpu": 1024, "memory_mib": 2048, "capacity": "FARGATE",
            "started_at": "2026-12-07T12:00:00Z", "stopped_at": "2026-12-07T12:10:00Z", "job_seconds": {"r": 1}}
    got = cost.run_cost([task], [{"step": "a", "key": "k", "final": True, "wall_seconds": 1, "task": task}],
                        written, "eu-west-1", "r")
    assert "AWS Price List API" in got["assumptions"][0]


def test_prices_shows_the_tables_date_source_and_figures(aws_env, capsys):
    assert cli.main(["prices"]) == 0
    out = capsys.readouterr().out
    assert "date: 2026-12-07" in out and "source: AWS public price pages" in out
    assert any(line.split()[:3] == ["ap-southeast-2", "0.04856", "0.00532"] for line in out.splitlines())
    assert cli.main(["prices", "--region", "us-east-1"]) == 0
    out = capsys.readouterr().out
    assert "lambda       gb_second 0.0000166667, request 0.0000002" in out and "p3.2xlarge" in out
    assert cli.main(["prices", "--region", "ap-south-1"]) == 2
    assert "prices --refresh --region ap-south-1" in capsys.readouterr().err


def test_refresh_without_credentials_fails_in_one_line(aws_env, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["prices", "--refresh", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS credentials found") and "Traceback" not in err
    assert not prices.user_table().exists()


def test_refresh_without_network_fails_in_one_line(aws_env, capsys):
    # A loopback port nothing listens on: the connection is refused at once.
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["prices", "--refresh", "--region", "eu-west-1", "--endpoint-url", endpoint]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach AWS") and "Traceback" not in err
    assert not prices.user_table().exists()
