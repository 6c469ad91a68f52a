#!/usr/bin/python
"""Stand-in ansible.windows.win_stat: the literal path's existence and SHA-256, recorded."""

from __future__ import annotations

# WANT_JSON: Ansible runs this with its arguments in a JSON file (module_utils/standin.py).
import hashlib
import os
import sys
import time

sys.path.insert(0, os.environ["SFBGEN_STANDIN_LIB"])
import standin  # noqa: E402


def main():
    params, check_mode = standin.arguments()
    started = time.time()
    path = params.get("path")
    stat = {"exists": os.path.lexists(path)}
    if stat["exists"]:
        stat["isdir"] = os.path.isdir(path)
        stat["islnk"] = os.path.islink(path)
        if not stat["isdir"] and params.get("get_checksum"):
            algorithm = params.get("checksum_algorithm")
            with open(path, "rb") as handle:
                stat["checksum"] = hashlib.new(algorithm, handle.read()).hexdigest()
    standin.record("win_stat", started, path=path, exists=stat["exists"])
    standin.exit_json(changed=False, stat=stat)


if __name__ == "__main__":
    main()
