"""Count the words of the text on stdin; print 'count word' lines, most frequent first.

Words shorter than $MIN_LENGTH characters (default 1) are not counted.
"""
import collections
import os
import re
import sys


def main() -> int:
    min_length = int(os.environ.get("MIN_LENGTH") or 1)
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", sys.stdin.read().lower())
    counts = collections.Counter(w for w in words if len(w) >= min_length)
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"{count} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
