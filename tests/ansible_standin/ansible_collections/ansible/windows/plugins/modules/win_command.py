#!/usr/bin/python
"""Stand-in ansible.windows.win_command: records argv and stdin, answers the scenario's next exit code
for (host, script), and writes the files the scenario says the script produces (on exit 0)."""

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
    argv = params.get("argv") or (params.get("cmd") or "").split()
    path = argv[argv.index("-File") + 1] if "-File" in argv else argv[0]
    script = path.split("\\")[-1]
    folder = path[: path.rfind("\\")]
    arguments = argv[argv.index("-File") + 2:] if "-File" in argv else argv[1:]
    whatif = "-WhatIf" in arguments
    table = standin.scenario()
    codes = table.get("codes", {}).get(standin.host(), {}).get(script, [])
    index = standin.previous_calls("win_command", script=script, whatif=whatif)
    rc = codes[min(index, len(codes) - 1)] if codes else 0
    time.sleep(float(table.get("sleep", 0)))
    if rc == 0 and not whatif:
        for relative in table.get("produces", {}).get(standin.host(), {}).get(script, []):
            target = folder + "\\" + relative.replace("/", "\\")
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(f"{standin.host()} {relative}\n")
    standin.record("win_command", started, script=script, arguments=arguments, argv=argv, whatif=whatif,
                   stdin=params.get("stdin"), rc=rc)
    standin.exit_json(changed=True, rc=rc, stdout=f"stand-in: {script} exited {rc}\r\n", stderr="",
                     stdout_lines=[f"stand-in: {script} exited {rc}"], cmd=" ".join(argv))


if __name__ == "__main__":
    main()
