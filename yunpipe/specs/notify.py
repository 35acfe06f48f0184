"""A workflow's `notify`: who hears of the pipeline's runs (a run settled, a run's first failed
file), each one subscriber of the pipeline's SNS topic.

`notify` is a list of strings, each telling its kind by its form, as one writes an address:
- an e-mail address: SNS mails it a confirmation link first, and nothing else until it is followed;
- an https:// URL: SNS POSTs each message as JSON, after a SubscriptionConfirmation the endpoint
  confirms. http:// only to this machine (localhost, 127.0.0.1, ::1) and only on the local cloud
  (the compiler refuses it elsewhere): the messages name files and why they failed;
- an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME), a standard queue;
- a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION or ALIAS]).
A list rather than an object keyed by kind: there is one way to write each subscriber, and the
order (and each entry's index in errors) is the file's.
"""
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from yunpipe.errors import InputError
from yunpipe.runtime.contract import REGION_PATTERN

# Ours, not SNS's (a topic takes millions): each entry is a subscription planned, confirmed by a
# person or a program, and told of every run; a list longer than this is a mailing list's job.
MAX_SUBSCRIBERS = 20
NOTIFY_SCHEMA = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SUBSCRIBERS,
                 "description": f"a list of at most {MAX_SUBSCRIBERS} e-mail addresses, https:// URLs, SQS queue ARNs "
                                "or Lambda function ARNs"}
KINDS = "an e-mail address, an https:// URL, an SQS queue ARN or a Lambda function ARN"
# An address as SNS and mail servers take it: a dot-atom local part (RFC 5322, no quoting) and a
# domain of at least two labels.
EMAIL = re.compile(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                   r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z")
ARN = re.compile(r"\Aarn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.*)\Z")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
QUEUE_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,80}\Z")
# function:NAME, or function:NAME:QUALIFIER (a version, an alias, $LATEST).
FUNCTION = re.compile(r"\Afunction:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[0-9]+|[A-Za-z0-9_-]{1,128}))?\Z")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Subscriber:
    """One subscription of the topic: SNS's protocol and endpoint."""

    protocol: str  # email, https, http, sqs, lambda
    endpoint: str
    field: str  # where the workflow names it: notify[i]

    @property
    def arn(self) -> dict[str, str]:
        """The parts of an SQS or Lambda endpoint's ARN ({} for the others)."""
        found = ARN.match(self.endpoint) if self.protocol in ("sqs", "lambda") else None
        return found.groupdict() if found else {}


def parse_notify(entries: tuple[str, ...], source: str) -> tuple[Subscriber, ...]:
    """Each entry as a subscriber, each once; an entry of no known form is bad input."""
    seen: dict[str, str] = {}
    subscribers = []
    for index, entry in enumerate(entries):
        field = f"notify[{index}]"
        subscriber = Subscriber(*_classify(entry, source, field), field)
        # Mail domains, and nothing else here, are case-insensitive (the local part is the server's: kept).
        same = entry.rsplit("@", 1)[0] + "@" + entry.rsplit("@", 1)[1].lower() if subscriber.protocol == "email" else entry
        if same in seen:
            raise InputError(source, field, f"expected each subscriber once, {entry!r} is already {seen[same]}")
        seen[same] = field
        subscribers.append(subscriber)
    return tuple(subscribers)


def _classify(entry: str, source: str, field: str) -> tuple[str, str]:
    if entry != entry.strip() or not entry:
        raise InputError(source, field, f"expected {KINDS} without spaces around it, got {entry!r}")
    if entry.startswith("arn:"):
        return _arn(entry, source, field)
    scheme = entry.split("://", 1)[0].lower() if "://" in entry else ""
    if scheme:
        return _url(entry, scheme, source, field)
    if "@" in entry:
        return "email", _email(entry, source, field)
    raise InputError(source, field, f"expected {KINDS}, got {entry!r}")


def _email(entry: str, source: str, field: str) -> str:
    local = entry.rsplit("@", 1)[0]
    if len(entry) > 254 or len(local) > 64 or not EMAIL.match(entry):
        raise InputError(source, field, f"expected an e-mail address such as someone@example.org (at most 64 "
                                        f"characters before the '@', 254 in all), got {entry!r}")
    return entry


def _url(entry: str, scheme: str, source: str, field: str) -> tuple[str, str]:
    problem = ""
    try:
        parts = urllib.parse.urlsplit(entry)
        _port = parts.port  # a port that is not a number raises
    except ValueError as error:
        problem = str(error)
    else:
        if re.search(r"[\s\x00-\x1f\x7f]", entry):
            problem = "a URL without spaces or control characters"
        elif not parts.hostname:
            problem = "a host name"
    if scheme not in ("https", "http"):
        problem = f"the scheme https://, not {scheme}://"
    if problem:
        raise InputError(source, field, f"expected an https:// URL such as https://example.org/hook ({problem}), "
                                        f"got {entry!r}")
    if scheme == "http" and not is_loopback(parts.hostname or ""):
        raise InputError(source, field, f"expected https://, got {entry!r}: the messages name your files and why "
                                        "they failed, not sent in the clear (http:// goes only to this machine, "
                                        "localhost or 127.0.0.1, on the local cloud)")
    return scheme, entry


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _arn(entry: str, source: str, field: str) -> tuple[str, str]:
    found = ARN.match(entry)
    if not found or found["partition"] not in PARTITIONS:
        raise InputError(source, field, f"expected an ARN such as arn:aws:sqs:us-east-1:123456789012:my-queue, "
                                        f"got {entry!r}")
    service, region, account, resource = found["service"], found["region"], found["account"], found["resource"]
    if service not in ("sqs", "lambda"):
        raise InputError(source, field, f"expected an SQS queue or a Lambda function ARN, got an ARN of service "
                                        f"{service!r}: {entry!r}")
    if not re.match(REGION_PATTERN, region):
        raise InputError(source, field, f"expected a region such as us-east-1 in the ARN, got {region!r}: {entry!r}")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise InputError(source, field, f"expected a 12-digit account id in the ARN, got {account!r}: {entry!r}")
    if service == "sqs":
        if not QUEUE_NAME.match(resource.removesuffix(".fifo")):
            raise InputError(source, field, "expected a queue name of at most 80 letters, digits, '-' and '_' in the "
                                            f"ARN, got {resource!r}: {entry!r}")
        if resource.endswith(".fifo"):
            raise InputError(source, field, f"expected a standard SQS queue, got FIFO queue {resource!r}: SNS "
                                            "delivers a standard topic's messages to standard queues only")
        return "sqs", entry
    if not FUNCTION.match(resource):
        raise InputError(source, field, "expected function:NAME or function:NAME:QUALIFIER in a Lambda ARN (a name "
                                        f"of at most 64 letters, digits, '-' and '_'), got {resource!r}: {entry!r}")
    return "lambda", entry
