"""tester.py INPUT OUTPUT: append a stamp line to INPUT and write it to OUTPUT.

Inputs steer it, so end-to-end tests can provoke each outcome:
- a line 'FAIL' (or the variable REFUSE's value) makes it exit 3 with a message on stderr;
- a first line 'SLEEP n' makes it sleep n seconds first (a slow job);
- a first line 'ALLOCATE n' makes it hold n MiB first (each page touched, so resident): a job
  over its task's memory, which the kernel kills.
"""
import os
import sys
import time


def main(source: str, target: str) -> int:
    with open(source) as handle:
        text = handle.read()
    lines = text.splitlines()
    if os.environ.get("REFUSE", "FAIL") in lines:
        print(f"tester: refusing {os.path.basename(source)}: it asks to fail", file=sys.stderr)
        return 3
    if lines and lines[0].startswith("SLEEP "):
        time.sleep(float(lines[0].split()[1]))
    if lines and lines[0].startswith("ALLOCATE "):
        held = bytearray(int(lines[0].split()[1]) * 2**20)
        held[::4096] = b"x" * len(held[::4096])
    with open(target, "w") as handle:
        handle.write(f"{text.rstrip()}\n-- {os.environ.get('STAMP', 'tested')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
