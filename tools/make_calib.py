#!/usr/bin/env python3
"""make_calib.py TESTBED OUTDIR [BYTES] [PER_FILE] -- calibration texts for the bundled router.

For each domain of the testbed, takes the files of its *train* split (TESTBED/eval/filelists/
<domain>.train.txt; the eval split is never read) that exist on this Debian machine, in an order
shuffled with a fixed seed, and concatenates the first PER_FILE characters of each (man pages
rendered at 80 columns like the testbed's eval text) until BYTES characters. Writes
OUTDIR/<domain>-train.txt and OUTDIR/<domain>-train.sources (the files used, in order).
"""
import os
import random
import subprocess
import sys


def render(path):
    if path.startswith("man:"):
        path = path[4:]
        if not os.path.exists(path):
            return None
        env = dict(os.environ, MANWIDTH="80", PAGER="cat")
        out = subprocess.run(["man", "-l", path], capture_output=True, text=True, env=env).stdout
        return subprocess.run(["col", "-b"], input=out, capture_output=True, text=True).stdout
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def main():
    testbed, outdir = sys.argv[1], sys.argv[2]
    cap = int(sys.argv[3]) if len(sys.argv) > 3 else 98304
    per = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    for d in ["python", "c", "shell", "english", "legal"]:
        with open(f"{testbed}/eval/filelists/{d}.train.txt") as f:
            files = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        random.Random(1234).shuffle(files)
        text, used = "", []
        for name in files:
            t = render(name)
            if not t or not t.strip():
                continue
            t = t[:per]
            text += t if t.endswith("\n") else t + "\n"
            used.append(name)
            if len(text) >= cap:
                break
        with open(f"{outdir}/{d}-train.txt", "w") as f:
            f.write(text[:cap])
        with open(f"{outdir}/{d}-train.sources", "w") as f:
            f.write("\n".join(used) + "\n")
        print(d, len(used), "files", len(text[:cap]), "characters")


if __name__ == "__main__":
    main()
