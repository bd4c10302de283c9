"""Stand-in for /usr/sbin/sendmail: writes what it receives to a spool directory.

    python fake_sendmail.py --spool DIR [--exit CODE] [sendmail args ...]

Each run writes ``DIR/<id>.eml`` (standard input, byte for byte) and
``DIR/<id>.json`` (the sendmail arguments), then exits with CODE (default 0),
printing a complaint on stderr when CODE is not 0.
"""

import json
import os
import sys
import uuid


def main(argv):
    spool, code, args = None, 0, []
    while argv:
        arg = argv.pop(0)
        if arg == "--spool":
            spool = argv.pop(0)
        elif arg == "--exit":
            code = int(argv.pop(0))
        else:
            args.append(arg)
    data = sys.stdin.buffer.read()
    name = os.path.join(spool, uuid.uuid4().hex)
    with open(name + ".eml.tmp", "wb") as handle:
        handle.write(data)
    with open(name + ".json", "w") as handle:
        json.dump({"args": args}, handle)
    os.rename(name + ".eml.tmp", name + ".eml")  # complete files only
    if code:
        print(f"fake sendmail: failing with status {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
