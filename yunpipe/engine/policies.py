"""IAM policy documents, rendered from templates/iam/ (jinja2) for the roles the compiler builds."""
import json
from typing import Any

import jinja2

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("yunpipe.templates", "iam"), undefined=jinja2.StrictUndefined, autoescape=False
)


def render_policy(template: str, **values: Any) -> dict:
    """A policy document from templates/iam/<template>.json.j2; always valid JSON."""
    return json.loads(_TEMPLATES.get_template(f"{template}.json.j2").render(**values))
