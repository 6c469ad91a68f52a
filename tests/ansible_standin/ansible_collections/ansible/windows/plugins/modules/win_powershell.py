#!/usr/bin/python
"""Stand-in ansible.windows.win_powershell: records which script ran (named by its first line,
"# sfbgen: <name>") with its parameters, and fails as the scenario says, with its message as output."""

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
    first = params.get("script").lstrip().splitlines()[0]
    name = first.split("sfbgen:", 1)[1].strip() if "sfbgen:" in first else first
    failure = standin.scenario().get("powershell", {}).get(standin.host(), {}).get(name)
    standin.record("win_powershell", started, name=name, parameters=params.get("parameters") or {},
                   check_mode=check_mode, failed=bool(failure))
    if failure:
        standin.fail_json(msg=failure, output=[failure], error=[], host_out="", result={})
    standin.exit_json(changed=True, output=[f"stand-in: {name} passed"], error=[], host_out="", result={})


if __name__ == "__main__":
    main()
