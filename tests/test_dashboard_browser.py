"""The dashboard in a real headless Chromium (Selenium), on the real broker: the list shows the
namespace's workflows and a filter narrows it; a failed workflow's page shows its error and
traceback, and its Retry button resumes it once its fault is gone; Cancel cancels a running
one; the dead-letter page lists a poison message and sends it again; the engines page shows
the groups; no page logs a console error.

Screenshots of each step go to .infinitic/screenshots/; with INFINITIC_DOCS_SCREENSHOTS=1 one
per page also goes to docs/screenshots/ (the README's). Needs Debian's chromium and
chromium-driver: without them the tests are skipped, saying how to install them."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from infinitic_streams import InfiniticClient, Worker
from infinitic_streams.dashboard import Backend, DashboardServer, Guard, create_app
from infinitic_streams.kafka.producer import Producer
from tests.apps.workflows import Fixable, Sleeper, StepsImpl, Sum

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / ".infinitic" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60.0
T = TypeVar("T")

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="the dashboard's browser tests need Chromium and its driver: "
        "apt-get install -y chromium chromium-driver",
    ),
]


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if found := check():
                return found
        except Exception as error:  # a page in the middle of a refresh
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:g} s (last error: {last!r})")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespace() -> str:
    return f"t-dashboard-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def kafka(kafka_bootstrap: str) -> dict[str, str]:
    return {"bootstrap.servers": kafka_bootstrap}


@pytest.fixture(scope="module")
def worker(
    kafka: dict[str, str], namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    started = Worker(
        kafka,
        namespace,
        services=[StepsImpl()],
        workflows=[Sum, Fixable, Sleeper],
        state_dir=tmp_path_factory.mktemp("dashboard-state"),
        stream={"session_timeout_ms": 6000},
    ).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(kafka: dict[str, str], namespace: str, worker: Worker) -> Iterator[InfiniticClient]:
    with InfiniticClient(kafka, namespace) as opened:
        yield opened


@pytest.fixture(scope="module")
def dashboard(kafka: dict[str, str], namespace: str, worker: Worker) -> Iterator[str]:
    backend = Backend(kafka, namespace)
    server = DashboardServer(create_app(backend, Guard()), "127.0.0.1", 0).start()
    yield server.url
    server.stop()
    backend.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never download a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1360,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


class Page:
    """The browser on the dashboard: open, find, click (through live refreshes), screenshots,
    and the console errors, checked after every page."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)  # type: ignore[no-any-return]

    def text(self, selector: str) -> str:
        return " ".join(element.text for element in self.css(selector))

    def ids(self) -> list[str]:
        return [row.get_attribute("data-id") for row in self.css("tr.workflow")]

    def click(self, selector: str, confirm: bool = False) -> None:
        """Click (again if a live refresh replaced the element meanwhile); accept the
        confirmation the button asks for."""
        from selenium.common.exceptions import NoAlertPresentException

        wait_for(f"clicking {selector}", lambda: self._click(selector), 30.0)
        if confirm:
            wait_for("the confirmation", lambda: self.driver.switch_to.alert, 10.0).accept()
        else:
            try:
                self.driver.switch_to.alert.dismiss()
                raise AssertionError(f"{selector} asked for a confirmation")
            except NoAlertPresentException:
                pass

    def _click(self, selector: str) -> bool:
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            self.css(selector)[0].click()
        except (IndexError, StaleElementReferenceException):
            return False
        return True

    def shot(self, name: str, docs: bool = False) -> None:
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))
        if docs and os.environ.get("INFINITIC_DOCS_SCREENSHOTS"):
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(DOCS_SHOTS / f"{name}.png"))

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def page(browser: Any, dashboard: str) -> Iterator[Page]:
    opened = Page(browser, dashboard)
    yield opened
    assert opened.console_errors() == []


@pytest.fixture(scope="module")
def fault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, the Fixable workflow's task fails."""
    path = tmp_path_factory.mktemp("fault") / "broken"
    path.write_text("the fault")
    return path


@pytest.fixture(scope="module")
def other_fault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault of the batch:3 workflows, which "retry all" resumes."""
    path = tmp_path_factory.mktemp("fault") / "also-broken"
    path.write_text("another fault")
    return path


@pytest.fixture(scope="module")
def started(client: InfiniticClient, fault: Path, other_fault: Path) -> dict[str, str]:
    """A namespace with completed, failed and running workflows, tagged."""
    ids = {
        "sum": client.dispatch(Sum.run, 3, id="sum-1", tags=["batch:1"]).id,
        "sum2": client.dispatch(Sum.run, 4, id="sum-2", tags=["batch:2"]).id,
        "failed": client.dispatch(Fixable.run, str(fault), id="fixable-1", tags=["batch:1"]).id,
        "running": client.dispatch(Sleeper.run, 3600.0, id="sleeper-1", tags=["batch:2"]).id,
    }
    for n in (2, 3):
        ids[f"batch{n}"] = client.dispatch(
            Fixable.run, str(other_fault), id=f"fixable-{n}", tags=["batch:3"]
        ).id
    wait_for("the failed workflows listed", lambda: client.count(status="FAILED") == 3)
    wait_for("all six listed", lambda: client.count() == 6 and client.count("Sum", "COMPLETED"))
    return ids


# -- the tests, in the order a user goes --------------------------------------------------------


def test_the_list_shows_the_workflows_and_a_filter_narrows_it(
    page: Page, started: dict[str, str]
) -> None:
    page.open("/workflows")
    wait_for("the six workflows", lambda: set(page.ids()) == set(started.values()))
    assert "FAILED 3" in page.text(".counts") and "all 6" in page.text(".counts")
    page.shot("workflows", docs=True)

    page.css("input[name=workflow]")[0].send_keys("Sum")
    page.click("#filter")
    wait_for("only the Sum workflows", lambda: sorted(page.ids()) == ["sum-1", "sum-2"])
    page.open("/workflows?tag=batch%3A2")
    wait_for("only batch:2", lambda: sorted(page.ids()) == ["sleeper-1", "sum-2"])
    page.shot("workflows-filtered")
    assert page.console_errors() == []


def test_a_failed_workflow_shows_its_error_and_retry_resumes_it_once_fixed(
    page: Page, client: InfiniticClient, started: dict[str, str], fault: Path
) -> None:
    page.open("/workflows?status=FAILED&tag=batch%3A1")
    wait_for("the failed one", lambda: page.ids() == [started["failed"]])
    page.click(f"tr[data-id='{started['failed']}'] td.id a")
    wait_for("its error", lambda: "RuntimeError" in page.text("#error"))
    assert f"{fault} exists" in page.text("#error")
    assert "Traceback" in page.text("#traceback")
    assert "fails_while_file_exists" in page.text("#traceback")
    assert "AttemptFailed" in page.text(".timeline")
    page.shot("workflow-failed", docs=True)

    fault.unlink()  # the fault is gone
    page.click("#retry")
    wait_for("the retry acknowledged", lambda: "Retry sent" in page.text(".flash"))
    wait_for("it completes, live", lambda: page.text("#status") == "COMPLETED")
    assert '"fixed"' in page.text("#result")
    assert "Retried" in page.text(".timeline")
    page.shot("workflow-retried")
    assert client.get_workflow(None, started["failed"]).result(timeout=30) == "fixed"
    assert page.console_errors() == []


def test_retry_all_resumes_every_failed_workflow_of_a_selection(
    page: Page, client: InfiniticClient, started: dict[str, str], other_fault: Path
) -> None:
    page.open("/workflows?tag=batch%3A3&status=FAILED")
    wait_for("both failed", lambda: sorted(page.ids()) == ["fixable-2", "fixable-3"])
    other_fault.unlink()
    page.click("#retry-all", confirm=True)
    wait_for("retried", lambda: "Retry sent to 2 workflow(s)." in page.text(".flash"))
    page.open("/workflows?tag=batch%3A3")
    wait_for("both completed, live", lambda: "COMPLETED 2" in page.text(".counts"))
    assert client.count(tag="batch:3", status="COMPLETED") == 2
    assert page.console_errors() == []


def test_cancel_cancels_a_running_workflow(page: Page, started: dict[str, str]) -> None:
    page.open(f"/workflow?id={started['running']}")
    wait_for("it runs", lambda: page.text("#status") == "RUNNING")
    assert "timer" in page.text(".pending").lower()
    page.shot("workflow-running")
    page.click("#cancel", confirm=True)
    wait_for("it is canceled", lambda: page.text("#status") == "CANCELED")
    assert "Canceled." in page.text(".flash")
    assert page.console_errors() == []


def test_the_dead_letters_page_lists_a_poison_message_and_sends_it_again(
    page: Page, kafka: dict[str, str], namespace: str, started: dict[str, str]
) -> None:
    key = f"poison-{uuid.uuid4().hex[:6]}"
    producer = Producer(kafka)
    delivery = producer.send(f"{namespace}.engine", key.encode(), b"\xff\x00not an envelope", 30)
    assert delivery.error is None
    page.open("/dead-letters")
    rows = wait_for("the poison message, live", lambda: page.css("tr.letter"))
    assert len(rows) == 1
    assert key in page.text("td.key")
    assert f"{namespace}.engine[" in page.text("td.source")
    assert "not an envelope" in page.text("td.payload")
    page.shot("dead-letters", docs=True)

    page.click("button.send-again", confirm=True)
    wait_for("sent again", lambda: "again to" in page.text(".flash"))
    # Still garbage: the engine dead-letters it once more.
    wait_for("dead-lettered again", lambda: len(page.css("tr.letter")) == 2, 90.0)
    assert "sent again" in page.text("span.sent")
    assert page.console_errors() == []


def test_the_engines_page_shows_the_groups(page: Page, namespace: str) -> None:
    page.open("/engines")
    engine = f"section.group[data-group='{namespace}.engine']"
    wait_for("the engine's group", lambda: page.text(f"{engine} dd.members") == "1")
    steps = f"section.group[data-group='{namespace}.service.Steps']"
    assert page.text(f"{steps} dd.members") == "1"
    assert page.text(f"{engine} dd.errors") in ("1", "2")  # the poison message
    wait_for("a throughput figure", lambda: "/s" in page.text(f"{engine} dd.rate"))
    page.shot("engines", docs=True)
    assert page.console_errors() == []
