"""Summarise py-spy ``--format raw`` (collapsed stack) files.

    .venv/bin/python bench/pyspy_summary.py FILE [FILE ...] [--top 25] [--match TEXT]

Prints, over all samples of the files: the functions with the most self time,
the functions with the most inclusive time (on the stack at all), and the
share of samples per top-level package of the innermost frame.
"""

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*):(?P<line>\d+)\)$")


def frame_name(frame, with_line=False):
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    name = f"{match.group('func')} ({path}"
    return name + (f":{match.group('line')})" if with_line else ")")


def package(frame):
    match = FRAME.match(frame)
    path = match.group("file") if match else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/work/main/" in path:
        return path.split("/work/main/", 1)[1].split("/", 1)[0]
    if "lib/python3" in path:
        return "stdlib:" + path.rsplit("/", 1)[-1]
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only stacks containing this text")
    parser.add_argument("--lines", action="store_true", help="self time by line")
    args = parser.parse_args()
    self_time, inclusive, packages = Counter(), Counter(), Counter()
    total = 0
    for path in args.files:
        with open(path) as handle:
            for line in handle:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or (args.match and args.match not in stack):
                    continue
                count = int(count)
                frames = stack.split(";")
                if frames and frames[0].startswith("process "):
                    frames = frames[1:]
                if frames and frames[0].startswith("thread "):
                    frames = frames[1:]
                if not frames:
                    continue
                total += count
                self_time[frame_name(frames[-1], args.lines)] += count
                packages[package(frames[-1])] += count
                for name in {frame_name(f) for f in frames}:
                    inclusive[name] += count
    print(f"{total} samples")
    for title, counter in (
        ("self time", self_time),
        ("inclusive time", inclusive),
        ("self time by package", packages),
    ):
        print(f"\n-- {title}")
        for name, count in counter.most_common(args.top):
            print(f"{100.0 * count / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
