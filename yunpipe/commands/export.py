"""export: a workflow or a deployed pipeline as a CloudFormation template (yunpipe.operations.export)."""
import argparse
import sys
from pathlib import Path

from yunpipe.commands.common import aws_options
from yunpipe.operations.export import ExportOptions, export


def run_export(args: argparse.Namespace) -> int:
    options = ExportOptions(args.file or "", args.pipeline or "", aws_options(args), args.use_user_credential)
    model, rendering = export(options)
    if not args.output:
        sys.stdout.write(rendering.text)
        if rendering.files:
            print(f"note: the launcher's code ({', '.join(rendering.files)}) is written next to the template "
                  "only with -o FILE", file=sys.stderr)
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendering.text)
    written = [str(output)]
    for name, data in rendering.files.items():
        (output.parent / name).write_bytes(data)
        written.append(str(output.parent / name))
    print(f"Pipeline {model.name}: wrote {', '.join(written)}")
    if rendering.notes:
        print("Before creating the stack:")
        for index, note in enumerate(rendering.notes, 1):
            print(f"  {index}. {note}")
    return 0
