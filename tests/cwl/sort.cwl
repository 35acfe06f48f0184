#!/usr/bin/env cwl-runner
# Written the way bio-cwl-tools writes its tools.
cwlVersion: v1.0
class: CommandLineTool
id: sort_lines
label: "sort: sort the lines of a text file"
doc: |
  GNU coreutils sort, writing the sorted lines to sorted.txt.

$namespaces:
  edam: http://edamontology.org/
  s: https://schema.org/

requirements:
  ResourceRequirement:
    coresMin: 2
    ramMin: 300
hints:
  DockerRequirement:
    dockerPull: yunpipe-tests/checksum:latest
  SoftwareRequirement:
    packages:
      coreutils:
        specs: [ https://identifiers.org/biotools/coreutils ]
        version: [ "9.1" ]

inputs:
  unsorted:
    type: File
    format: edam:format_2330
    label: the text to sort
    inputBinding:
      position: 1
  reverse:
    type: boolean?
    inputBinding:
      prefix: --reverse
  numeric:
    type: boolean
    default: false
    inputBinding:
      prefix: --numeric-sort
  field_separator:
    type: string?
    inputBinding:
      prefix: --field-separator=
      separate: false
  key:
    type: int?
    inputBinding:
      prefix: --key

baseCommand: sort
arguments:
  - prefix: --output
    valueFrom: sorted.txt

outputs:
  sorted:
    type: File
    format: edam:format_2330
    outputBinding:
      glob: sorted.txt

$schemas:
  - https://edamontology.org/EDAM_1.18.owl
s:license: https://spdx.org/licenses/GPL-3.0-or-later
