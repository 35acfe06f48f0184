#!/usr/bin/env cwl-runner
# Written as the CWL user guide writes its stdin/stdout examples.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
requirements:
  DockerRequirement:
    dockerPull: yunpipe-tests/checksum:latest
stdin: $(inputs.text.path)
inputs:
  text:
    type: File
outputs:
  line_count:
    type: stdout
stdout: line_count.txt
