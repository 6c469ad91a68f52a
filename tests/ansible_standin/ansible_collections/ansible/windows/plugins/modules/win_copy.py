#!/usr/bin/python
"""Stand-in ansible.windows.win_copy: copies from the controller to the literal destination path (a
folder's contents when src ends with /), and records it."""

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
    src, dest = params.get("src"), params.get("dest")
    if not check_mode:
        if os.path.isdir(src):
            target = dest.rstrip("\\")
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dest)
    # What the controller kept the source as: a file in transit must be private (0600 in a 0700 folder).
    modes = {"src_mode": oct(os.stat(src).st_mode & 0o777), "src_folder_mode": oct(os.stat(os.path.dirname(src.rstrip("/"))).st_mode & 0o777)}
    standin.record("win_copy", started, src=src, dest=dest, check_mode=check_mode, directory=os.path.isdir(src), **modes)
    standin.exit_json(changed=True, src=src, dest=dest)


if __name__ == "__main__":
    main()
