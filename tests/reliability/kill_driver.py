"""A service process to kill: it starts and completes instances AND delivers their calls.

Run with the project's python: ``python kill_driver.py PLAN.json``. It is a small fork server,
so that a test can kill and restart the service a hundred times in seconds: the parent loads
the modules and the BPMN files once (no database connection, no socket), prints ``ready``, then
for each ``run SEED [POINT@N]`` line on stdin forks a child that does the work, prints
``pid PID``, waits for the child and prints ``exit PID CODE`` (``-9`` after a SIGKILL). The
child opens its own database connections and HTTP client, exactly like a fresh process.

The child plays a client and a service at once. It picks the next action at random among what
the database says is possible (start a planned instance; complete an open todo as one of its
open handlers; cancel an instance marked for cancelling), writes its INTENT to a journal,
performs it with an idempotency key (business key for a start, ``key=`` for a completion),
then writes that it is done: a client that retries its last unanswered request, as a web
form does. A restarted child first re-sends the intent that has no "done" line. Half the
children let each action deliver its own calls (the bridge's auto-delivery), the others
drain the outbox between actions with a separate relay; leases are short either way, so a
dead child's claims pass to the next child quickly. It prints
``event PID action|delivered|replay`` as it goes and ``done PID`` once every planned instance
has ended and the outbox is empty.

``POINT@N`` arms a named crash point (``engine_bridge.crashpoints``) to end the child with
``os._exit`` the N-th time it is reached.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from engine_bridge import crashpoints
from engine_bridge.bridge import Bridge
from engine_bridge.clock import SystemClock
from engine_bridge.errors import TaskNotOpenError
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.library import WorkflowLibrary
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import Store
from engine_bridge.ttc import TTCClient

APP = "kill-test"


def emit(line: str) -> None:
    """One whole line on stdout with one write, so lines of parent and child never mix."""
    os.write(1, (line + "\n").encode())


class Journal:
    """Intents and their completion, one JSON object a line, appended with single writes
    (a killed writer leaves at most a torn last line, which is ignored)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def unfinished(self) -> tuple[int, dict[str, Any] | None]:
        """The next intent number, and the last intent if it has no "done" line."""
        entries = self._entries()
        intents = [e for e in entries if "intent" in e]
        done = {e["done"] for e in entries if "done" in e}
        last = intents[-1] if intents else None
        next_id = (last["intent"] + 1) if last else 1
        if last is not None and last["intent"] not in done:
            return next_id, last
        return next_id, None

    def write(self, entry: dict[str, Any]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)


def perform(bridge: Bridge, intent: dict[str, Any]) -> bool:
    """Carry out one intent; True when the bridge found it already done."""
    op = intent["op"]
    if op == "start":
        inst = bridge.start(
            intent["process"], initiator="2023001", data=intent["data"], key=intent["key"]
        )
        return inst.duplicate
    if op == "complete":
        outcome = bridge.complete(
            intent["task"], handler=intent["handler"], data=intent["data"], key=intent["key"]
        )
        return outcome.duplicate
    try:
        bridge.cancel(intent["instance"], by="2023001")
    except TaskNotOpenError:
        return True  # the cancel was committed before the last crash
    return False


def choices(store: Store, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action the database says can be taken now."""
    records = {r.business_key: r for r in store.list_instances(limit=100_000)}
    open_todos: dict[str, list[Any]] = {}
    for instance_id, todo in store.open_todos():
        open_todos.setdefault(instance_id, []).append(todo)
    out: list[dict[str, Any]] = []
    for planned in plan["instances"]:
        record = records.get(planned["key"])
        if record is None:
            out.append(
                {
                    "op": "start",
                    "process": planned["process"],
                    "data": planned["data"],
                    "key": planned["key"],
                }
            )
            continue
        if record.status != "running":
            continue
        todos = open_todos.get(record.id, [])
        if planned.get("cancel_at") and any(t.node_id == planned["cancel_at"] for t in todos):
            out.append({"op": "cancel", "instance": record.id})
            continue
        for todo in todos:
            for handler in todo.open_handlers:
                out.append(
                    {
                        "op": "complete",
                        "task": todo.todo_id,
                        "handler": handler,
                        "data": plan["node_data"].get(todo.node_id, {}),
                        "key": f"{planned['key']}/{todo.todo_id}/{handler}",
                    }
                )
    return out


def child(plan: dict[str, Any], library: WorkflowLibrary, seed: int, crash: str | None) -> None:
    pid = os.getpid()
    rng = random.Random(seed)
    if crash:
        name, _, hit = crash.partition("@")
        crashpoints.arm(name, hit=int(hit or 1), mode="exit")
    clock = SystemClock()
    store = Store.open(plan["database"])
    client = TTCClient(
        plan["center"],
        app_id=APP,
        client_id="test-client",
        client_secret="test-secret",
        timeout=plan["timeout"],
    )
    # Half the lives deliver as an application embedding the bridge does (each action sends
    # its own calls before it returns); the others queue and drain with a separate relay, as
    # with an ``engine-bridge worker`` beside the application.
    inline = rng.random() < 0.5
    bridge = Bridge(
        library=library,
        store=store,
        sender=client,
        clock=clock,
        app_id=APP,
        auto_deliver=inline,
        lease_seconds=plan["lease_seconds"],
    )
    relay = Relay(
        store,
        client,
        clock=clock,
        lease_seconds=plan["lease_seconds"],
        batch_size=plan.get("batch_size", 20),
        policy=RetryPolicy(base_seconds=0.05, cap_seconds=0.5, max_attempts=1000, rng=rng),
    )
    journal = Journal(plan["journal"])
    next_id, pending = journal.unfinished()
    if pending is not None:
        duplicate = perform(bridge, pending)
        journal.write({"done": pending["intent"], "duplicate": duplicate, "replayed": True})
        emit(f"event {pid} replay {'duplicate' if duplicate else 'fresh'}")
    while True:
        possible = choices(store, plan)
        if not possible:
            relay.drain()
            if store.pending_count() == 0:
                dead = store.outbox(status="dead")
                if dead:
                    raise RuntimeError(f"dead letters: {[(r.id, r.last_error) for r in dead]}")
                emit(f"done {pid}")
                return
            time.sleep(0.02)  # rows leased to a killed child: wait for the lease to end
            continue
        intent = {"intent": next_id, **rng.choice(possible)}
        next_id += 1
        journal.write(intent)
        duplicate = perform(bridge, intent)
        journal.write({"done": intent["intent"], "duplicate": duplicate})
        emit(f"event {pid} action")
        if rng.random() < 0.6 and relay.drain().delivered:
            emit(f"event {pid} delivered")


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    library = WorkflowLibrary.load(plan["workflows"], transforms=(translate_dialects,))
    emit("ready")
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] != "run":
            emit(f"error unknown command {line.strip()!r}")
            continue
        seed = int(command[1])
        crash = command[2] if len(command) > 2 else None
        pid = os.fork()
        if pid == 0:  # the child never returns into the loop
            code = 0
            try:
                child(plan, library, seed, crash)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                code = 1
            os._exit(code)
        emit(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        emit(f"exit {pid} {os.waitstatus_to_exitcode(status)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
