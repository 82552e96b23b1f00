"""Finance works the exception desk in a real browser (Debian's headless Chromium driven by Selenium through
the system's chromedriver), against a running daemon and the sandboxes: sign in with the admin token, list
→ show → edit and retry → the record reaches the ERP; a second exception resolved from its page; the open
list ends empty. ``.ci/run`` installs Chromium and sets ``ACCORD_REQUIRE_BROWSER``."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgspec
import pytest

from accord.actors.desk import ExceptionDesk
from accord.redis_server import EmbeddedRedis
from accord.streams.scope import Scope
from tests.helpers import wait_for
from tests.integration.test_daemon_e2e import Running, running_daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "desk-token-for-the-browser-test"
T = TypeVar("T")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium session; never downloads a browser or a driver."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        if os.environ.get("ACCORD_REQUIRE_BROWSER"):
            pytest.fail("Chromium and chromedriver are required (ACCORD_REQUIRE_BROWSER): apt-get install chromium "
                        "chromium-driver")
        pytest.skip("no chromium/chromedriver here; .ci/run installs Debian's packages")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(30)
    try:
        yield session
    finally:
        session.quit()


def _until(what: Callable[[], T], message: str, timeout: float = 60) -> T:
    """Poll a condition from the browser thread (the daemon keeps running on the event loop)."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.2)


def _work_the_desk(browser: Any, desk: str, run: Running, refused: dict[str, str]) -> None:
    """What finance does, click by click (runs in a thread)."""
    from selenium.webdriver.common.by import By

    def find(css: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, css)

    def submit(css: str) -> None:
        """Click, then wait for the next page (a click does not wait for the navigation it starts)."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        page = find("html")
        find(css).click()
        wait = WebDriverWait(browser, 30)
        wait.until(expected_conditions.staleness_of(page))
        # and until the next page is whole: a node found while it still loads may belong to no document
        # by the time it is clicked (chromedriver: "Node with given id does not belong to the document")
        wait.until(lambda b: b.execute_script("return document.readyState") == "complete")

    browser.get(f"{desk}/desk")
    assert "/desk/login" in browser.current_url, "the desk asks who you are first"
    find("#token").send_keys("not the token")
    submit("#signin")
    assert "not this desk's admin token" in find("#flash").text
    find("#token").send_keys(TOKEN)
    find("#name").send_keys("Fiona (finance)")
    submit("#signin")

    # list: both refused creates, filtered to the ERP's permanent refusals
    find("#filter-system").send_keys("erp")
    submit("#apply-filters")
    rows = browser.find_elements(By.CSS_SELECTOR, "#exceptions tbody tr")
    listed = {row.find_element(By.CSS_SELECTOR, "a.show").text: row.text for row in rows}
    assert set(listed) == set(refused.values()) and all("permanent" in t for t in listed.values()), listed

    # show the Globex one, edit its name and retry
    globex, initech = refused["Globex"], refused["Initech"]
    submit(f"a.show[href='/desk/{globex}']")
    assert "Duplicate" in find("#fact-what-happened").text or "6240" in find("#fact-what-happened").text
    assert '"Globex"' in find("#payload").text
    name = find("#f-name")
    name.clear()
    name.send_keys("Globex (US)")
    submit("#edit-retry")
    assert find("#flash").text == "retry: done", find("#flash").text
    assert find("#fact-state").text.startswith("retried (by Fiona (finance)")
    _until(lambda: [c for c in run.world.erp.records("Customer") if c["DisplayName"] == "Globex (US)"],
           "the edited customer in the ERP")

    # the other one was fixed by hand in QuickBooks: resolve it with a note
    browser.get(f"{desk}/desk?system=erp")
    submit(f"a.show[href='/desk/{initech}']")
    note = browser.find_elements(By.CSS_SELECTOR, "form.inline input[name=note]")[1]
    note.send_keys("merged by hand in QuickBooks")
    submit("#resolve")
    assert find("#flash").text == "resolve: done"
    assert "merged by hand" in find("#fact-note").text

    browser.get(f"{desk}/desk")
    assert find("#empty").text == "No exceptions match."
    browser.get(f"{desk}/desk?state=all&system=erp")
    states = sorted(e.text for e in browser.find_elements(By.CSS_SELECTOR, "#exceptions tbody td[class^=state]"))
    assert states == ["resolved", "retried"], states


async def test_finance_edits_retries_and_resolves_in_a_browser(
        ray_session: None, redis_servers: dict[str, EmbeddedRedis], tmp_path: Any) -> None:
    def with_token(settings: Any) -> Any:
        return msgspec.structs.replace(settings, http=msgspec.structs.replace(settings.http, admin_token=TOKEN))

    async with running_daemon(redis_servers["6.2"], tmp_path, adjust=with_token) as run:
        world = run.world
        crm_ids = {}
        for name, country in (("Globex", "DE"), ("Initech", "FR")):  # the ERP already has one of each name
            world.erp.user_create("Customer", {"DisplayName": name, "BillAddr": {"Country": country}})
        for name in ("Globex", "Initech"):
            crm_ids[name] = world.crm.user_create("Account", {"Name": name, "BillingCountryCode": "US",
                                                              "CurrencyIsoCode": "USD"})

        async def refused() -> dict[str, str] | None:
            found = {e.source_id: e.exception_id for e in await run.exceptions() if e.reason == "permanent"}
            return {name: found[rid] for name, rid in crm_ids.items()} if set(found) == set(crm_ids.values()) else None

        exception_ids = await wait_for(refused, timeout=60, message="both refused creates on the desk")
        desk = f"http://{run.settings.http.admin_host}:{run.daemon.admin_port}"
        with chromium() as browser:
            await asyncio.to_thread(_work_the_desk, browser, desk, run, exception_ids)
        states = {eid: (await ExceptionDesk(run.redis, Scope.of(run.settings)).get(eid)).status
                  for eid in exception_ids.values()}
        assert {s.state for s in states.values()} == {"retried", "resolved"}
        assert {s.by for s in states.values()} == {"Fiona (finance)"}
        assert len([c for c in world.erp.records("Customer") if c["DisplayName"] == "Globex (US)"]) == 1
