#!/usr/bin/python
"""Stand-in ansible.windows.win_file: a literal path made a folder or removed, recorded."""

from __future__ import annotations

# WANT_JSON: Ansible runs this with its arguments in a JSON file (module_utils/standin.py).
import os
import shutil
import sys
import time

sys.path.insert(0, os.environ["SFBGEN_STANDIN_LIB"])
import standin  # noqa: E402


def main():
    params, check_mode = standin.arguments()
    started = time.time()
    path, state = params.get("path"), params.get("state")
    if not check_mode:
        if state == "directory":
            os.makedirs(path, exist_ok=True)
        elif state == "absent" and os.path.isdir(path):
            shutil.rmtree(path)
        elif state == "absent" and os.path.lexists(path):
            os.remove(path)
        elif state == "touch":
            open(path, "a").close()
    standin.record("win_file", started, path=path, state=state, check_mode=check_mode)
    standin.exit_json(changed=True, path=path)


if __name__ == "__main__":
    main()
