"""What every stand-in module shares: which simulated Windows host it runs for, the scenario table, and
the record of calls.

The modules are old-style JSON modules (the word WANT_JSON in each: Ansible runs them with their
arguments in a JSON file, docs.ansible.com, "Ansible module architecture"), so a call costs one small
Python start and no module framework: the engine tests run many. Each module finds this file through
SFBGEN_STANDIN_LIB. The tests run each simulated host with `ansible_connection: local` and its own
`ansible_python_interpreter`, a wrapper that sets SFBGEN_STANDIN_HOST, so a module knows the host it
stands for without anything in the playbook naming it. Windows paths are used literally as local file
names: the controller's ansible.builtin.fetch reads them the same way over a local connection, so the
files one stand-in writes are the files fetch finds.

Environment:
  SFBGEN_STANDIN_HOST      the inventory host this module call stands for
  SFBGEN_STANDIN_SCENARIO  a JSON file: {"codes": {host: {script: [exit codes, one per call]}},
                           "produces": {host: {script: [relative files written on exit 0]}},
                           "powershell": {host: {name: "failure message"}}, "sleep": seconds}
  SFBGEN_STANDIN_RECORD    a JSONL file, one line per call, appended under a lock
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time


def arguments() -> tuple[dict, bool]:
    """The module's arguments (the JSON file Ansible names) and whether this is check mode."""
    with open(sys.argv[1], encoding="utf-8") as handle:
        args = json.load(handle)
    return args, bool(args.get("_ansible_check_mode"))


def exit_json(**result) -> None:
    print(json.dumps(result))
    sys.exit(0)


def fail_json(msg: str, **result) -> None:
    print(json.dumps({"failed": True, "msg": msg, **result}))
    sys.exit(1)


def host() -> str:
    return os.environ["SFBGEN_STANDIN_HOST"]


def scenario() -> dict:
    path = os.environ.get("SFBGEN_STANDIN_SCENARIO")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _locked(callback):
    with open(os.environ["SFBGEN_STANDIN_RECORD"], "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            lines = [json.loads(line) for line in handle if line.strip()]
            return callback(handle, lines)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def previous_calls(module: str, **match) -> int:
    """How many calls of `module` on this host, with these fields, the record holds already."""
    me = host()
    return _locked(lambda handle, lines: sum(
        1 for line in lines
        if line["host"] == me and line["module"] == module and all(line.get(k) == v for k, v in match.items())))


def record(module: str, started: float, **fields) -> None:
    """Append one call: host, module, what it was asked, when it started and ended, its place in order."""
    entry = {"host": host(), "module": module, "start": started, "end": time.time(), **fields}

    def append(handle, lines):
        entry["order"] = len(lines)
        handle.seek(0, os.SEEK_END)
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()

    _locked(append)
