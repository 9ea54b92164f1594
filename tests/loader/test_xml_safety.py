"""Safe parsing: hostile or broken XML is refused with a located, coded problem."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from bpmn_factory import CORPUS, definitions

from engine_bridge.errors import BpmnError
from engine_bridge.loader.xml_safety import parse_bpmn


def _code(data: bytes, file: str = "x.bpmn") -> tuple[str, int | None]:
    with pytest.raises(BpmnError) as info:
        parse_bpmn(data, file)
    problem = info.value.problems[0]
    assert problem.file == file  # type: ignore[attr-defined]
    return problem.code, problem.line  # type: ignore[attr-defined]


def test_a_plain_bpmn_document_parses_to_its_definitions_root() -> None:
    """A good document gives the bpmn:definitions element with line numbers kept."""
    root = parse_bpmn(definitions('<bpmn:process id="p"/>').encode(), "ok.bpmn")
    assert root.tag.endswith("}definitions")
    assert root.find("{http://www.omg.org/spec/BPMN/20100524/MODEL}process").sourceline == 3


@pytest.mark.parametrize("data", [b"", b"   \n\t  "])
def test_empty_file_is_xml_empty(data: bytes) -> None:
    assert _code(data)[0] == "xml-empty"


def test_corpus_empty_file_is_xml_empty() -> None:
    data = (CORPUS / "camunda-modeler__empty.bpmn").read_bytes()
    assert _code(data, "empty.bpmn")[0] == "xml-empty"


def test_corpus_broken_file_is_malformed_with_its_line() -> None:
    """The mismatched closing tag is on line 5 of the corpus file."""
    data = (CORPUS / "camunda-modeler__broken.bpmn").read_bytes()
    assert _code(data, "broken.bpmn") == ("xml-malformed", 5)


def test_missing_namespace_is_not_bpmn() -> None:
    data = (CORPUS / "bpmn-js__missing-namespace.bpmn").read_bytes()
    assert _code(data)[0] == "not-bpmn"


def test_other_xml_is_not_bpmn() -> None:
    assert _code(b"<?xml version='1.0'?><html><body/></html>")[0] == "not-bpmn"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="p" name="&lol4;"/>
</bpmn:definitions>"""


def test_billion_laughs_is_refused() -> None:
    """Internal entity declarations are refused, not merely left unexpanded."""
    assert _code(BILLION_LAUGHS)[0] == "xml-dtd-forbidden"


def test_billion_laughs_in_utf16_is_refused() -> None:
    """The refusal does not depend on spotting the declaration in UTF-8 bytes."""
    data = BILLION_LAUGHS.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
    assert _code(data.decode().encode("utf-16"))[0] == "xml-dtd-forbidden"


def test_corpus_xxe_template_is_refused() -> None:
    data = (CORPUS / "spiff-arena__invoice.bpmn").read_bytes()
    assert _code(data)[0] == "xml-dtd-forbidden"


def test_xxe_reading_a_local_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
        '<bpmn:process id="p" name="&xxe;"/></bpmn:definitions>'
    ).encode()
    with pytest.raises(BpmnError) as info:
        parse_bpmn(data, "xxe.bpmn")
    assert "TOP-SECRET" not in str(info.value)
    assert info.value.problems[0].code == "xml-dtd-forbidden"  # type: ignore[attr-defined]


class _Listener:
    """A loopback socket that records whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connected = False

    def watch(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.connected = True
        conn.close()


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE d [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>',
        '<!DOCTYPE d [<!ENTITY % pe SYSTEM "http://127.0.0.1:{port}/x.dtd"> %pe;]>',
        '<!DOCTYPE d SYSTEM "http://127.0.0.1:{port}/x.dtd">',
    ],
)
def test_network_entities_are_refused_without_touching_the_network(doctype: str) -> None:
    """External entities, parameter entities and external DTDs never open a connection."""
    listener = _Listener()
    watcher = threading.Thread(target=listener.watch)
    watcher.start()
    try:
        data = (
            '<?xml version="1.0"?>'
            + doctype.format(port=listener.port)
            + '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"/>'
        ).encode()
        assert _code(data)[0] == "xml-dtd-forbidden"
    finally:
        watcher.join()
        listener.sock.close()
    assert listener.connected is False


ATTLIST_DEFAULT = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ATTLIST userTask candidateUsers CDATA "EVIL001">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <process id="p"><userTask id="t" candidateUsers="T001"/></process>
</definitions>"""


@pytest.mark.parametrize(
    "data",
    [
        ATTLIST_DEFAULT,
        ATTLIST_DEFAULT.replace(b'candidateUsers="T001"', b""),
        ATTLIST_DEFAULT.replace(
            b'ATTLIST userTask candidateUsers CDATA "EVIL001"', b"ELEMENT userTask ANY"
        ),
        ATTLIST_DEFAULT.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
        .decode()
        .encode("utf-16"),
    ],
    ids=["attlist", "attlist-default-applies", "element", "attlist-utf16"],
)
def test_any_dtd_declaration_is_refused_with_its_line(data: bytes) -> None:
    """libxml2 applies an attribute list's defaults without loading any DTD: a hidden handler
    or default flow would join the model unseen. No declaration is allowed at all."""
    assert _code(data) == ("xml-dtd-forbidden", 2)


def test_an_external_dtd_is_refused_at_the_doctype_line() -> None:
    data = (
        b'<?xml version="1.0"?>\n\n<!DOCTYPE d SYSTEM "x.dtd">\n'
        b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"/>'
    )
    assert _code(data) == ("xml-dtd-forbidden", 3)


def test_any_doctype_is_refused_even_a_bare_one() -> None:
    """Parsed, a DOCTYPE with an attribute list looks like a bare one: none is allowed."""
    data = (
        b'<?xml version="1.0"?>\n<!DOCTYPE definitions>\n'
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"/>'
    )
    assert _code(data) == ("xml-dtd-forbidden", 2)


@pytest.mark.parametrize(
    "declaration",
    [
        b'<!ATTLIST userTask candidateUsers CDATA "EVIL001">',
        b'<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">',
    ],
    ids=["attlist", "entities"],
)
def test_a_doctype_in_utf7_is_refused(declaration: bytes) -> None:
    """UTF-7 writes "<!" as "+ADwAIQ-": no byte scan for declarations sees it."""
    text = (
        '<?xml version="1.0" encoding="UTF-7"?>\n<!DOCTYPE definitions ['
        + declaration.decode()
        + ']>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
        '<process id="p"><userTask id="t"/></process></definitions>'
    )
    head, body = text.split("?>", 1)
    data = (head + "?>" + body.replace("<!", "+ADwAIQ-")).encode("ascii")
    assert b"<!" not in data
    assert _code(data)[0] == "xml-dtd-forbidden"


def test_a_comment_or_cdata_mentioning_a_declaration_is_fine() -> None:
    data = (
        b'<?xml version="1.0"?><definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"'
        b' id="d"><!-- <!ATTLIST x> --><documentation><![CDATA[<!ELEMENT y>]]></documentation>'
        b"</definitions>"
    )
    assert parse_bpmn(data, "x.bpmn").get("id") == "d"


def test_an_element_with_thousands_of_attributes_is_refused_at_its_line() -> None:
    """Walks over one element's attributes grow with their square: 200,000 of them kept
    `validate` busy for minutes. No designer writes more than a few dozen."""
    many = " ".join(f'a{n}="x"' for n in range(5000))
    data = definitions(f'<bpmn:process id="p">\n<bpmn:task id="t" {many}/></bpmn:process>')
    code, line = _code(data.encode())
    assert code == "xml-too-large" and line == 4
    fine = " ".join(f'a{n}="x"' for n in range(40))
    assert parse_bpmn(definitions(f'<bpmn:process id="p" {fine}/>').encode(), "ok.bpmn") is not None
