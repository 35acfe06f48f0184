"""yunpipe: turn an algorithm container into an event-driven pipeline on AWS."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "yunpipe" / "__init__.py").read_text()).group(1)

setup(
    name="yunpipe",
    version=VERSION,
    description="Turn an algorithm container into an event-driven pipeline on AWS, or offline on a local cloud.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Every package under yunpipe/ (tests/test_packaging.py checks a wheel holds each of them),
    # plus the top-level templates/ and examples/ folders, shipped inside the package so a
    # non-editable install carries the Dockerfile templates and the examples the demo runs.
    packages=[*find_packages(include=("yunpipe", "yunpipe.*")), "yunpipe.templates", "yunpipe.examples"],
    package_dir={"yunpipe.templates": "templates", "yunpipe.examples": "examples"},
    package_data={"yunpipe.templates": ["*/*.j2", "*/*.json"], "yunpipe.examples": ["*/*"],
                  "yunpipe.runtime.accounting": ["*.json"], "yunpipe.ui": ["templates/*.html", "static/*"]},
    install_requires=[
        "boto3>=1.28,<2",
        "docker>=7.0,<8",
        "jinja2>=3.1,<4",
        # `yunpipe ui`'s web app (moto's server brings it too; pinned here since yunpipe uses it itself).
        "flask>=3.0,<4",
        "pyyaml>=6.0,<7",
        "jsonschema>=4.18,<5",
        "tqdm>=4.66,<5",
        # moto is the embedded local cloud. yunpipe hooks two of its internals (the S3
        # notification dispatch and the ECS task state manager), so the range is pinned;
        # tests/test_moto_hooks.py fails loudly if a release moves them.
        "moto[server,s3,awslambda,events,ssm,resourcegroupstaggingapi]>=5.2.1,<5.3",
        "localstack-client>=2.5,<3",
        # `wrap -f tool.cwl` reads CWL CommandLineTools with cwl-utils' parser (yunpipe/specs/cwl.py).
        "cwl-utils>=0.45,<0.46",
        # `yunpipe report --html` draws its charts as inline SVG (yunpipe/operations/charts.py).
        "matplotlib>=3.10,<4",
    ],
    # parliament lints the IAM policies setup-pipe renders (tests/test_policy_lint.py).
    # hypothesis generates the spec files tests/test_fuzz_specs.py feeds to wrap and setup-pipe.
    extras_require={"test": ["pytest>=8,<10", "pytest-timeout>=2.3,<3", "parliament>=1.6,<2", "hypothesis>=6.170,<7",
                             # make test lints (ruff.toml) and type-checks (setup.cfg [mypy]) first.
                             "ruff>=0.17,<0.18", "mypy>=2.4,<3", "types-PyYAML>=6.0,<7",
                             # tests/botocore_model.py matches botocore's patterns, written for Java (\p{L}).
                             "regex>=2024.4,<2028",
                             # tests/test_report_browser.py drives Debian's chromium (scripts/bootstrap.sh installs it).
                             "selenium>=4.20,<5",
                             # AWS's CloudFormation resource schemas, for `yunpipe export` (tests/test_export.py).
                             # Pinned to one minor: each release adds rules, and the test wants zero findings.
                             "cfn-lint>=1.58,<1.59"]},
    entry_points={
        "console_scripts": [
            "yunpipe=yunpipe.cli:main",
            "wrap=yunpipe.cli:wrap_main",
            "setup-pipe=yunpipe.cli:setup_pipe_main",
            "clean-up=yunpipe.cli:clean_up_main",
            "create-lambda-exec-role=yunpipe.cli:create_lambda_exec_role_main",
        ]
    },
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"],
)
