#!/usr/bin/env cwl-runner
# Written as the CWL user guide writes its input binding examples.
cwlVersion: v1.2
class: CommandLineTool
label: Replace text
doc: Runs a sed script over a text file.
hints:
  DockerRequirement:
    dockerPull: yunpipe-tests/checksum:latest
baseCommand: sed
inputs:
  script:
    type: string
    default: s/cat/dog/g
    doc: the sed script
    inputBinding:
      position: 1
      prefix: -e
  text:
    type: File
    inputBinding:
      position: 2
outputs:
  replaced:
    type: File
    outputBinding:
      glob: replaced.txt
stdout: replaced.txt
