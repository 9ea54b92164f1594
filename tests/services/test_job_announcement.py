"""The Camunda job-announcement example from the corpus, end to end against the fake centre.

``camunda-examples__camunda-testing-job-announcement.bpmn`` (lanes, candidate groups, bean-call
assignees ``#{jobAnnouncementService.findRequester(id)}`` / ``findEditor``, a service task and a
call activity) calls ``…-publication.bpmn`` (a service task, then a parallel split into two
optional service tasks). The files are read in place from ``../shared/corpus``; resolvers and
service handlers stand in for the Java bean ``jobAnnouncementService``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge

from .kit import CORPUS, Harness

MAIN = "camunda-examples__camunda-testing-job-announcement.bpmn"
PUBLICATION = "camunda-examples__camunda-testing-job-announcement-publication.bpmn"
PROCESS = "camunda-testing-job-announcement"
BEAN = "jobAnnouncementService"


class JobAnnouncementService:
    """The bean: who requested and who edits an announcement, and where it was posted."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failing: set[str] = set()

    def find_requester(self, announcement_id: int) -> str:
        self.calls.append(("findRequester", announcement_id))
        return f"R{announcement_id}"

    def find_editor(self, announcement_id: int) -> str:
        self.calls.append(("findEditor", announcement_id))
        return f"E{announcement_id}"

    def handler(self, method: str) -> Any:
        def run(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((method, params["arg0"]))
            if method in self.failing:
                raise ConnectionError(f"{method}: upstream refused")
            return {f"{method}Done": True}

        return run

    def services(self) -> dict[str, Any]:
        methods = ("postToWebsite", "postToTwitter", "postToFacebook", "notifyAboutPostings")
        return {f"{BEAN}.{m}": self.handler(m) for m in methods}

    def resolvers(self) -> dict[str, Any]:
        return {
            f"{BEAN}.findRequester": self.find_requester,
            f"{BEAN}.findEditor": self.find_editor,
        }


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    if not (CORPUS / MAIN).is_file() or not (CORPUS / PUBLICATION).is_file():
        pytest.fail(
            f"the corpus is expected at {CORPUS} (../shared/corpus beside the checkout) with "
            f"{MAIN} and {PUBLICATION}",
            pytrace=False,
        )
    opened = Harness(tmp_path, f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        yield opened
    finally:
        opened.close()


def _open(harness: Harness, bean: JobAnnouncementService) -> Bridge:
    return harness.bridge(
        services=bean.services(),
        resolvers=bean.resolvers(),
        workflows=[CORPUS / MAIN, CORPUS / PUBLICATION],
    )


def _only_todo(bridge: Bridge, instance_id: str, node_id: str) -> Any:
    [todo] = bridge.todos(instance_id)
    assert todo.node_id == node_id
    return todo


def test_the_main_path_runs_to_the_end_with_the_centre_in_step(harness: Harness) -> None:
    """Describe → review (rejected) → improve → review (approved) → publish → website,
    Twitter and Facebook in parallel → mail → end; centre == engine after every step."""
    bean = JobAnnouncementService()
    bridge = _open(harness, bean)
    assert bridge.check() == []
    inst = bridge.start(
        PROCESS, initiator="HR1", data={"jobAnnouncementId": 42, "twitter": True, "facebook": True}
    )
    harness.assert_in_step(bridge, inst.id)

    edit = _only_todo(bridge, inst.id, "edit")
    assert edit.handling_groups == ("engineering",)
    assert bridge.complete(edit.task_id, handler="ENG7").status == "next"
    harness.assert_in_step(bridge, inst.id)

    review = _only_todo(bridge, inst.id, "review")
    assert review.handlers == ("R42",)
    outcome = bridge.complete(review.task_id, handler="R42", data={"approved": False})
    assert outcome.next_nodes == ("correct",)
    harness.assert_in_step(bridge, inst.id)

    correct = _only_todo(bridge, inst.id, "correct")
    assert correct.handlers == ("E42",)
    bridge.complete(correct.task_id, handler="E42")
    harness.assert_in_step(bridge, inst.id)

    review = _only_todo(bridge, inst.id, "review")
    outcome = bridge.complete(review.task_id, handler="R42", data={"approved": True})
    assert outcome.next_nodes == ("publish",)
    harness.assert_in_step(bridge, inst.id)

    publish = _only_todo(bridge, inst.id, "publish")
    final = bridge.complete(publish.task_id, handler="ENG7")

    assert final.status == "end"
    assert bridge.instance(inst.id).status == "finished"
    harness.assert_in_step(bridge, inst.id)
    assert harness.centre_of(inst.id) == {}
    assert bridge.incidents() == []
    posted = [c for c in bean.calls if c[0].startswith("post")]
    assert posted[0] == ("postToWebsite", 42)
    assert sorted(posted[1:]) == [("postToFacebook", 42), ("postToTwitter", 42)]
    assert bean.calls[-1] == ("notifyAboutPostings", 42)
    assert ("findRequester", 42) in bean.calls and ("findEditor", 42) in bean.calls
    assert harness.endpoints()[-1] == "taskHandle:end"


def test_a_failing_post_stops_the_announcement_until_it_is_retried(harness: Harness) -> None:
    """The publication's website post fails: the publish completion stands, an incident is
    open, and a retry after the website is back posts and runs to the end."""
    bean = JobAnnouncementService()
    bean.failing.add("postToWebsite")
    bridge = _open(harness, bean)
    inst = bridge.start(
        PROCESS, initiator="HR1", data={"jobAnnouncementId": 7, "twitter": False, "facebook": False}
    )
    bridge.complete(_only_todo(bridge, inst.id, "edit").task_id, handler="ENG7")
    bridge.complete(
        _only_todo(bridge, inst.id, "review").task_id, handler="R7", data={"approved": True}
    )
    publish = _only_todo(bridge, inst.id, "publish")

    outcome = bridge.complete(publish.task_id, handler="ENG7")

    assert outcome.status == "none"
    assert bridge.instance(inst.id).status == "incident"
    [incident] = bridge.incidents(status="open")
    assert (incident.node_id, incident.service_key) == (
        "publish_announcement_website",
        f"{BEAN}.postToWebsite",
    )
    assert "ConnectionError: postToWebsite: upstream refused" in incident.error
    harness.assert_in_step(bridge, inst.id)

    bean.failing.clear()
    assert bridge.retry_incident(incident.id).status == "resolved"
    assert bridge.instance(inst.id).status == "finished"
    harness.assert_in_step(bridge, inst.id)
    assert [c[0] for c in bean.calls if c[0] != "findRequester"] == [
        "postToWebsite",
        "postToWebsite",
        "notifyAboutPostings",
    ]
