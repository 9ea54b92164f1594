"""``engine-bridge show``: draw an instance (or a BPMN file) as SVG, and instances as a page.

::

    engine-bridge show INSTANCE --database URL --svg out.svg [--html out.html]
    engine-bridge show FILE.bpmn [--process ID] --svg out.svg [--html out.html]
    engine-bridge show --database URL --html index.html      # every instance (--limit, --status)

The diagram comes from the BPMN file's BPMNDI (``--workflows``: where the instance's process is
defined), coloured by what the stored instance did: done, waiting (with who may act), waiting
for its timer, message or signal, in progress, cancelled, not reached. Reading only: the
database is not migrated or written.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine_bridge.cli._common import add_database_argument, open_for_reading
from engine_bridge.clock import SystemClock
from engine_bridge.errors import EngineBridgeError
from engine_bridge.render.html import Panel, TodoRow, render_page
from engine_bridge.render.instance import (
    file_panel,
    instance_panel,
    render_file_svg,
    render_instance_svg,
)
from engine_bridge.store.records import INSTANCE_STATUSES

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show",
        help="draw an instance or a BPMN file as SVG; list instances on an HTML page",
        description="Render the diagram of an instance (coloured by state: done, waiting with "
        "its handlers, waiting for an event, in progress, cancelled, not reached) or of a BPMN "
        "file, as SVG and/or a self-contained HTML page. Without a target, --html lists every "
        "instance.",
    )
    parser.add_argument(
        "target", nargs="?", metavar="INSTANCE_OR_FILE", help="an instance id or a .bpmn file"
    )
    parser.add_argument("--process", metavar="ID", help="the file's process to draw (first)")
    parser.add_argument("--svg", metavar="OUT", help="write the SVG here")
    parser.add_argument("--html", metavar="OUT", help="write a self-contained HTML page here")
    parser.add_argument(
        "--workflows",
        action="append",
        metavar="PATH",
        help="BPMN files or folder the instances' processes come from (default: workflows)",
    )
    parser.add_argument("--status", choices=INSTANCE_STATUSES, help="page: only these instances")
    parser.add_argument("--limit", type=int, default=100, help="page: at most this many (100)")
    add_database_argument(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except OSError as exc:  # an output path that cannot be written
        print(f"engine-bridge show: cannot write the output: {exc}")
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if not args.svg and not args.html:
        print("engine-bridge show: give --svg OUT and/or --html OUT")
        return 2
    target = args.target
    if target is not None and (Path(target).is_file() or target.endswith(".bpmn")):
        return _show_file(args, Path(target))
    if target is None and args.svg:
        print("engine-bridge show: --svg draws one instance or file; name it (or use --html)")
        return 2
    return _show_instances(args, target)


def _write(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def _show_file(args: argparse.Namespace, path: Path) -> int:
    if not path.is_file():
        print(f"engine-bridge show: no such file: {path}")
        return 2
    if args.svg:
        _write(args.svg, render_file_svg(path, args.process))
    if args.html:
        panel = file_panel(path, args.process)
        _write(args.html, render_page([panel], title=panel.heading, subtitle=str(path)))
    return 0


def _bridge(args: argparse.Namespace) -> Any:
    # Imported here: loading SpiffWorkflow and the library is only needed for instances.
    from engine_bridge.bridge import DEFAULT_APP_ID, Bridge
    from engine_bridge.loader.dialects import translate_dialects
    from engine_bridge.loader.library import WorkflowLibrary

    library = WorkflowLibrary.load(
        args.workflows or ["workflows"], transforms=(translate_dialects,)
    )
    store = open_for_reading(args.database)
    return Bridge(
        library=library, store=store, sender=None, clock=SystemClock(), app_id=DEFAULT_APP_ID
    )


def _panel(bridge: Any, instance_id: str, number: int) -> Panel:
    """The instance's section; an instance that cannot be drawn still shows its todos."""
    try:
        return instance_panel(bridge, instance_id, prefix=f"i{number}-")
    except EngineBridgeError as exc:
        record = bridge.store.get_instance(instance_id)
        return Panel(
            key=f"instance-{instance_id}",
            heading=f"{record.process_id} · {instance_id}",
            status=record.status,
            facts=(("process", record.process_id), ("initiator", record.initiator)),
            todos=tuple(
                TodoRow(t.task_id, t.node_id, t.node_name, t.handlers, t.handling_groups)
                for t in bridge.todos(instance_id)
            ),
            notes=(f"the diagram cannot be drawn: {exc}",),
        )


def _show_instances(args: argparse.Namespace, instance_id: str | None) -> int:
    bridge = _bridge(args)
    try:
        if instance_id is not None:
            bridge.store.get_instance(instance_id)  # an unknown id fails here, clearly
            if args.svg:
                _write(args.svg, render_instance_svg(bridge, instance_id))
            ids = [instance_id]
        else:
            records = bridge.store.list_instances(status=args.status, limit=args.limit)
            ids = [r.id for r in records]
        if args.html:
            panels = [_panel(bridge, i, n) for n, i in enumerate(ids)]
            now = datetime.now(UTC).isoformat(timespec="seconds")
            title = panels[0].heading if instance_id is not None else "engine_bridge instances"
            subtitle = f"{bridge.store.url} · {len(panels)} instance(s) · drawn {now}"
            _write(args.html, render_page(panels, title=title, subtitle=subtitle))
    finally:
        bridge.close()
    return 0
