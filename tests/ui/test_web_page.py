"""The web page of episodes in a real browser (Debian's headless Chromium): sign in, list,
open an episode, approve a pending run; a hostile label is shown as text, never run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from remediator_testing.fakes import FakeSlack
from tests.admin.helpers import OPERATOR, READ, admin_config
from tests.conftest import Daemon, MakeDaemon
from tests.governance.helpers import World, eventually, firing, labels, post_and_settle
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, reporting, scaling
from tests.ui.browser import chromium, click_and_load, screenshot

# Markup that runs script if anything renders it unescaped (the page's CSP forbids script
# anyway; the assertions below would catch a change of title or an injected element).
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


@pytest.fixture
async def slack() -> Any:
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake


async def _pending_daemon(make_daemon: MakeDaemon, slack: FakeSlack, world: World) -> Daemon:
    config = {**reporting(slack, mode="approve"), **admin_config()}
    daemon = await make_daemon(scaling(world), config=config)
    await post_and_settle(daemon, firing(labels("orders")))
    await post_and_settle(daemon, firing(labels("payments", team=HOSTILE), minutes=1))
    return daemon


def _browse(driver: WebDriver, base: str, token: str) -> dict[str, Any]:
    """Everything the browser does, in one thread: Selenium is blocking, the daemon is not."""
    seen: dict[str, Any] = {}
    driver.get(base + "/ui/governance")
    assert driver.current_url.startswith(base + "/ui/login"), driver.current_url
    screenshot(driver, "ui-login")
    driver.find_element(By.ID, "token").send_keys("not-a-token")
    click_and_load(driver, driver.find_element(By.ID, "sign-in"))
    seen["wrong_token"] = driver.find_element(By.ID, "problem").text
    driver.find_element(By.ID, "token").send_keys(token)
    click_and_load(driver, driver.find_element(By.ID, "sign-in"))
    # Back where the user wanted to go.
    seen["after_sign_in"] = driver.current_url
    driver.get(base + "/ui/")
    rows = driver.find_elements(By.CSS_SELECTOR, "#episodes tr.episode")
    seen["rows"] = [r.text for r in rows]
    screenshot(driver, "ui-episodes")
    # Filter by namespace: both are in shop; a namespace nobody uses lists nothing.
    driver.get(base + "/ui/?namespace=elsewhere")
    seen["filtered"] = len(driver.find_elements(By.CSS_SELECTOR, "#episodes tr.episode"))
    driver.get(base + "/ui/")
    link = next(
        r.find_element(By.TAG_NAME, "a")
        for r in driver.find_elements(By.CSS_SELECTOR, "#episodes tr.episode")
        if "payments" in r.text
    )
    click_and_load(driver, link)
    seen["title"] = driver.title
    seen["labels"] = driver.find_element(By.ID, "labels").text
    seen["injected_images"] = len(driver.find_elements(By.CSS_SELECTOR, "#labels img"))
    seen["injected_scripts"] = len(driver.find_elements(By.CSS_SELECTOR, "main script"))
    seen["runs"] = driver.find_element(By.TAG_NAME, "main").text
    screenshot(driver, "ui-episode")
    driver.get(base + "/ui/governance")
    screenshot(driver, "ui-governance")
    row = driver.find_elements(By.CSS_SELECTOR, "#approvals tr.approval")[0]
    seen["approval_row"] = row.text
    form = row.find_element(By.CSS_SELECTOR, "form[action$='/approve']")
    form.find_element(By.NAME, "reason").send_keys("lag is real, go")
    click_and_load(driver, form.find_element(By.NAME, "approve"))
    seen["message"] = driver.find_element(By.ID, "message").text
    seen["left"] = len(driver.find_elements(By.CSS_SELECTOR, "#approvals tr.approval"))
    screenshot(driver, "ui-approved")
    return seen


async def test_sign_in_list_open_and_approve_in_a_browser(
    make_daemon: MakeDaemon, slack: FakeSlack
) -> None:
    world = World()
    daemon = await _pending_daemon(make_daemon, slack, world)
    base = str(daemon.client.make_url("")).rstrip("/")

    def browse() -> dict[str, Any]:
        with chromium() as driver:
            return _browse(driver, base, OPERATOR)

    seen = await asyncio.to_thread(browse)
    assert seen["wrong_token"] == "unknown token"
    assert seen["after_sign_in"] == base + "/ui/governance"
    assert len(seen["rows"]) == 2 and all("KafkaLagHigh" in r for r in seen["rows"])
    assert any("Deployment/shop/orders" in r and "pending_approval" in r for r in seen["rows"])
    assert seen["filtered"] == 0
    # The hostile label is there, as text; nothing it carries ran or became an element.
    assert HOSTILE in seen["labels"]
    assert seen["title"].startswith("KafkaLagHigh") and "pwned" not in seen["title"]
    assert seen["injected_images"] == 0 and seen["injected_scripts"] == 0
    assert "Run 2: scale on Deployment/shop/payments" in seen["runs"]
    assert "Deployment/shop/orders" in seen["approval_row"]
    assert seen["message"] == "run 1 approved by alice: acted"
    assert seen["left"] == 1  # the other run still waits
    # Approved through the admin API's path: the guards ran and the action was made.
    assert world.calls == [("scale", "Deployment/shop/orders")]
    audit = await daemon.engine.governance.audit()
    assert [(a.who, a.action, a.subject, a.reason) for a in audit][:1] == [
        ("alice", "approved", "run:1", "lag is real, go")
    ]


async def _get(daemon: Daemon, path: str, **headers: str) -> tuple[int, str, Any]:
    response = await daemon.client.get(path, headers=headers, allow_redirects=False)
    return response.status, await response.text(), response.headers


async def test_access_rules_without_a_browser(make_daemon: MakeDaemon, slack: FakeSlack) -> None:
    world = World()
    daemon = await _pending_daemon(make_daemon, slack, world)
    status, _, headers = await _get(daemon, "/ui/")
    assert status == 303 and headers["Location"] == "/ui/login?next=/ui/"
    status, html, headers = await _get(daemon, "/ui/", Authorization=f"Bearer {READ}")
    assert status == 200 and "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "&lt;script&gt;" not in html  # the timeline does not show labels other than names
    status, html, _ = await _get(daemon, "/ui/governance", Authorization=f"Bearer {READ}")
    assert "read-only token" in html and "Approve" not in html
    # A read token cannot decide, even by posting the form by hand.
    answer = await daemon.client.post(
        "/ui/approvals/1/approve",
        data={"reason": "sneaky"},
        headers={"Authorization": f"Bearer {READ}"},
    )
    assert answer.status == 403 and "may read but not decide" in await answer.text()
    # A cookie session must echo its CSRF secret: a forged form changes nothing.
    login = await daemon.client.post(
        "/ui/login", data={"token": OPERATOR, "next": "//evil.example/x"}, allow_redirects=False
    )
    assert login.status == 303 and login.headers["Location"] == "/ui/"  # no open redirect
    cookie = login.cookies["remediator_ui"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    forged = await daemon.client.post("/ui/approvals/1/deny", data={"reason": "forged"})
    assert forged.status == 403
    status, html, _ = await _get(daemon, "/ui/governance")
    assert status == 200 and html.count('class="approval"') == 2
    assert world.calls == []
    # Hostile label in the episode page: escaped in the markup itself.
    [payments] = [
        e for e in await daemon.engine.store.list_episodes() if e.labels["deployment"] == "payments"
    ]
    status, html, _ = await _get(
        daemon, f"/ui/episodes/{payments.id}", Authorization=f"Bearer {READ}"
    )
    assert status == 200 and "<script>" not in html.split("</head>")[1]
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in html
    status, html, _ = await _get(daemon, "/ui/episodes/nope", Authorization=f"Bearer {READ}")
    assert status == 404 and "no episode &#39;nope&#39;" in html
    await eventually(lambda: _nothing_pending(daemon))


async def _nothing_pending(daemon: Daemon) -> bool:
    return await daemon.engine.store.outbox_pending() == {}


async def test_a_javascript_generator_url_is_not_a_link(make_daemon: MakeDaemon) -> None:
    world = World()
    daemon = await make_daemon(scaling(world), config=admin_config())
    payload = firing(labels("orders"))
    payload["alerts"][0]["generatorURL"] = "javascript:alert(1)"
    await post_and_settle(daemon, payload)
    [episode] = await daemon.engine.store.list_episodes()
    status, html, _ = await _get(
        daemon, f"/ui/episodes/{episode.id}", Authorization=f"Bearer {READ}"
    )
    assert status == 200 and "javascript:" not in html and 'id="generator"' not in html
