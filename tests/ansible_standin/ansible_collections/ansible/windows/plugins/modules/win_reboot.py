#!/usr/bin/python
"""Stand-in ansible.windows.win_reboot: records the restart (nothing restarts)."""

from __future__ import annotations

# WANT_JSON: Ansible runs this with its arguments in a JSON file (module_utils/standin.py).
import os
import sys
import time

sys.path.insert(0, os.environ["SFBGEN_STANDIN_LIB"])
import standin  # noqa: E402


def main():
    params, check_mode = standin.arguments()
    started = time.time()
    if not check_mode:
        standin.record("win_reboot", started, reboot_timeout=params.get("reboot_timeout"))
    standin.exit_json(changed=True, rebooted=not check_mode, elapsed=0)


if __name__ == "__main__":
    main()
