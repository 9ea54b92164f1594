"""The instance page in a real browser: headless Chromium renders what `engine-bridge show`
wrote for a running leave_approval instance, and the screenshot shows the diagram's colours.

Chromium is Debian's ``chromium`` package (``make test`` and ``.ci/run`` install it when they
run as root). Set ENGINE_BRIDGE_SCREENSHOT=PATH to keep the screenshot (that is how
docs/images/leave_approval.png is made, with a CJK font such as Debian's fonts-wqy-microhei
installed so the Chinese names are legible; the test itself does not need one).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.testing import FakeCenter

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 900
WAITING_FILL = (0xFF, 0xF4, 0xCE)  # render.svg.STYLES["waiting"].fill
DONE_FILL = (0xE6, 0xF4, 0xEA)  # render.svg.STYLES["done"].fill
INSTALL = (
    "headless Chromium is needed for this test and is not installed at /usr/bin/chromium; "
    "install it with `sudo apt-get update && sudo apt-get install -y chromium` (Debian), or "
    "run `make test` as root, which installs it"
)


@dataclass
class Page:
    html: Path
    instance_id: str
    workdir: Path


def chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not found:
        pytest.fail(INSTALL, pytrace=False)
    return found


def browse(page: Page, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """One headless Chromium run on the page with the project's fixed, offline flags."""
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={page.workdir / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            *extra,
            page.html.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """`engine-bridge show INSTANCE --html` for a leave waiting at the dean."""
    workdir = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{workdir / 'b.db'}"
    data = {"applicant_name": "张三", "days": 5, "reason": "回家探亲", "counselor": "T001"}
    with Bridge.open(WORKFLOWS, database=url, center=FakeCenter().transport()) as bridge:
        inst = bridge.start("leave_approval", initiator="2023001", data={**data, "dean": "D001"})
        bridge.complete(inst.todos[0].task_id, handler="T001", data={"approved": True})
    html = workdir / "leave.html"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "engine_bridge.cli", "show", inst.id),
            *("--database", url, "--workflows", str(WORKFLOWS), "--html", str(html)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield Page(html, inst.id, workdir)


def png_pixels(data: bytes) -> tuple[int, int, set[tuple[int, ...]]]:
    """(width, height, distinct colours) of an 8-bit RGB/RGBA PNG, decoded with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, chunks = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour_type in (2, 6), (depth, colour_type)
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            chunks += body
    raw = zlib.decompress(chunks)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        if row % 3 == 0:  # every third row is plenty to see which colours are there
            colours.update(tuple(line[i : i + 3]) for i in range(0, stride, channels * 2))
        previous = line
    return width, height, colours


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 0xFF
        else:  # 4: Paeth
            corner = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            line[i] = (line[i] + pred) & 0xFF


def test_screenshot_shows_the_coloured_diagram(page: Page) -> None:
    """Chromium's screenshot has the window's size and the waiting and done colours."""
    shot = page.workdir / "leave.png"
    result = browse(page, f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(colours) > 30, "the screenshot is (nearly) blank"
    assert WAITING_FILL in colours, "the waiting task's fill is not on screen"
    assert DONE_FILL in colours, "the done tasks' fill is not on screen"
    target = os.environ.get("ENGINE_BRIDGE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_dom_has_the_svg_and_the_waiting_handler(page: Page) -> None:
    """The DOM Chromium built holds the inline SVG with dean_review waiting for D001."""
    result = browse(page, "--dump-dom")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    dom = result.stdout.decode("utf-8")
    assert "<svg" in dom and page.instance_id in dom
    start = dom.index('data-element-id="dean_review"')
    group = dom[start : dom.index("</g>", dom.index("eb-handlers", start)) + 4]
    assert 'data-state="waiting"' in group
    assert "handlers: D001" in group
    assert 'data-element-id="notify_applicant" data-kind="userTask" data-state="not-reached"' in dom
