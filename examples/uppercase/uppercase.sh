#!/bin/sh
# uppercase.sh INPUT OUTPUT: write INPUT with every letter upper-cased to OUTPUT.
set -eu
tr '[:lower:]' '[:upper:]' < "$1" > "$2"
