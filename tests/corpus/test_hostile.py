"""Hostile and broken BPMN: refused with a located problem, never expanded, never fetched, never
a traceback; markup in ids and names is printed as written in text and escaped elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine_bridge.errors import BpmnError
from engine_bridge.loader.library import analyse_paths
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS
from engine_bridge.loader.xml_safety import parse_bpmn

from .verdicts import CORPUS

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _laughs(encoding: str) -> bytes:
    """A billion-laughs document (10^9 copies once expanded) in ``encoding``."""
    entities = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"<!DOCTYPE d [\n{entities}\n]>\n"
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="http://x">'
        '<bpmn:process id="p" name="&l9;"/></bpmn:definitions>'
    )
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-be", "utf-32"])
def test_internal_entity_expansion_is_refused_in_any_encoding(encoding: str) -> None:
    """Billion laughs is refused before expansion, and located on its entity declarations,
    whatever encoding the XML declaration picks (libxml2 would expand attribute entities)."""
    with pytest.raises(BpmnError) as info:
        parse_bpmn(_laughs(encoding), "laughs.bpmn")
    [problem] = info.value.problems
    assert (problem.code, problem.line) == ("xml-dtd-forbidden", 3)


def test_external_entities_and_dtds_are_never_read(tmp_path: Path) -> None:
    """XXE to a local file, a parameter entity and an external DTD: each refused by the real
    command; the secret never appears in its output."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42", encoding="utf-8")
    head = f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="http://x">'
    documents = {
        "xxe.bpmn": f'<!DOCTYPE d [<!ENTITY s SYSTEM "file://{secret}">]>\n{head}'
        '<bpmn:process id="p" name="&s;"/></bpmn:definitions>',
        "param.bpmn": f'<!DOCTYPE d [<!ENTITY % s SYSTEM "file://{secret}"> %s;]>\n{head}'
        "</bpmn:definitions>",
        "dtd.bpmn": f'<!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">\n{head}</bpmn:definitions>',
    }
    for name, text in documents.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", "--each", "--format", "json"]
        + [str(tmp_path / name) for name in documents],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "TOP-SECRET" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {(p["file"].rsplit("/", 1)[-1], p["code"]) for p in report["problems"]} == {
        (name, "xml-dtd-forbidden") for name in documents
    }


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "xml-empty"),
        (b"   \n\t", "xml-empty"),
        (b"\x00\xff\xfe garbage \x89PNG", "xml-malformed"),
        (b"<a>" * 300 + b"</a>" * 300, "xml-malformed"),
        (b'<?xml version="1.0"?><html><body>hi</body></html>', "not-bpmn"),
        (b"<bpmn:definitions xmlns:bpmn='x'>", "xml-malformed"),
    ],
)
def test_broken_files_get_one_located_verdict(tmp_path: Path, content: bytes, code: str) -> None:
    """Empty, binary, absurdly deep, not BPMN, truncated: one problem, no exception."""
    path = tmp_path / "broken.bpmn"
    path.write_bytes(content)
    problems = analyse_paths([path], transforms=DEFAULT_TRANSFORMS).problems
    assert [p.code for p in problems] == [code]
    assert problems[0].file == str(path)


MARKUP_ID = 'x"><img src=1 onerror=alert(1)>'
_ID = MARKUP_ID.replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
MARKUP = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="http://x">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="{_ID}"/>
    <bpmn:userTask id="{_ID}" name="&lt;script&gt;alert('n')&lt;/script&gt; &amp; co"/>
    <bpmn:sequenceFlow id="f1" sourceRef="{_ID}" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_markup_in_ids_and_names_is_raw_in_text_and_escaped_in_json(tmp_path: Path) -> None:
    """Text output prints what the file says; JSON output carries no ``<``, ``>`` or ``&``
    at all (so it is safe inside HTML) and still parses back to the same strings."""
    path = tmp_path / "markup.bpmn"
    path.write_text(MARKUP, encoding="utf-8")
    text = _validate(str(path))
    assert text.returncode == 1
    assert f"[{MARKUP_ID}] (no-handlers)" in text.stdout
    assert "<script>alert('n')</script> & co" in text.stdout

    as_json = _validate("--format", "json", str(path))
    assert not {"<", ">", "&"} & set(as_json.stdout)
    [problem] = [p for p in json.loads(as_json.stdout)["problems"] if p["code"] == "no-handlers"]
    assert problem["element_id"] == MARKUP_ID
    assert "<script>alert('n')</script> & co" in problem["message"]


def test_corpus_xss_file_is_escaped_in_validate_json_and_in_the_pictures(tmp_path: Path) -> None:
    """camunda-modeler xss.bpmn: validate's JSON and ``engine-bridge show``'s SVG and HTML
    carry its ids escaped, and no ``<img`` from its names ever reaches the output."""
    xss = CORPUS / "camunda-modeler__xss.bpmn"
    report = _validate("--format", "json", str(xss))
    assert "Traceback" not in report.stdout + report.stderr
    assert not {"<", ">"} & set(report.stdout)
    assert any('"><' in p["message"] for p in json.loads(report.stdout)["problems"])
    svg, page = tmp_path / "x.svg", tmp_path / "x.html"
    command = ["show", str(xss), "--svg", str(svg), "--html", str(page)]
    shown = subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    for picture in (svg, page):
        body = picture.read_text(encoding="utf-8")
        assert "<img" not in body.lower() and "onerror" not in body
        assert 'data-element-id="&quot;&gt;&lt;"' in body
