"""The buyer pages in a real browser (headless Chromium driven by Selenium) against
``abonnement serve`` in a subprocess: buy the coffee link, a declined card, pay an invoice
from its link, collect arrears through a failed-payment e-mail's update link. Each page is
photographed at phone (375 px) and desktop widths."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.acceptance.test_collection_scenarios import BOB_CARD
from tests.conftest import ROOT, run
from tests.server.shop import LINK_SECRET, text_of

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT.parent / "server-shots"  # one set, for people to look at
WIDTHS = {"phone": 375, "desktop": 1280}

pytestmark = pytest.mark.skipif(
    not CHROMEDRIVER.exists(),
    reason="browser tests need Debian's chromium and chromium-driver (/usr/bin/chromedriver)",
)


def _today() -> str:
    return datetime.now(ZoneInfo("America/New_York")).date().isoformat()  # the account's zone


class Site:
    """The spec's shop served by ``abonnement serve`` on a free loopback port."""

    def __init__(self, root: Path):
        from tests.acceptance.scenario import Scenario

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        account = "  account: Just One More Cup Coffee Co.\n"
        today = _today()
        self.scenario = Scenario(root, f"sqlite:///{root / 'abonnement.db'}", subscriptions=f"""\
  - id: bob-coffee
    contact: bob
    start: {today}
    items: [{{product: coffee-1kg, quantity: 1}}]
    collection: {{mode: automatic, method: saved, payment_method: bob-visa}}
  - id: bob-beans
    contact: bob
    start: {today}
    items: [{{product: coffee-250g, quantity: 3}}]
    collection: {{mode: manual, payment_terms: net_14}}
""", replace={
            account: account + f"  server: {{public_url: '{self.base}'}}\n",
            BOB_CARD: BOB_CARD.replace("tok_visa", "tok_insufficient_funds"),
        })  # fmt: skip
        self.env = {**os.environ, "ABONNEMENT_LINK_SECRET": LINK_SECRET,
                    "PYTHONPATH": str(ROOT)}  # fmt: skip
        self.cli("apply")
        self.cli("run")  # bills both: the card fails (an e-mail with an update link), an invoice
        self.server = subprocess.Popen(
            [sys.executable, "-m", "abonnement", "--config", str(self.scenario.config),
             "--db", self.scenario.db_url, "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1).read()
                break
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    output = self.server.stdout.read().decode() if self.server.stdout else ""
                    raise RuntimeError(f"abonnement serve did not start:\n{output}") from None
                time.sleep(0.1)

    def cli(self, *args: str) -> object:
        import json

        result = run("--config", str(self.scenario.config), "--db", self.scenario.db_url,
                     *args, "--json", env={"ABONNEMENT_LINK_SECRET": LINK_SECRET})  # fmt: skip
        assert result.exit_code == 0, result.output + result.stderr
        return json.loads(result.stdout)

    def mails(self) -> list:
        import email
        from email import policy

        folder = self.scenario.config / "outbox"
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(folder.glob("*.eml"))]  # fmt: skip

    def close(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
        if self.server.stdout:
            self.server.stdout.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shots")
    yield folder
    # one set where people look; a failing run leaves what it saw
    shutil.rmtree(SHOTS, ignore_errors=True)
    shutil.copytree(folder, SHOTS)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--lang=en-US",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(15)
    yield driver
    driver.quit()


def photograph(driver, folder: Path, name: str) -> None:
    """The whole page at each width, as NAME-phone.png and NAME-desktop.png."""
    for label, width in WIDTHS.items():
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        metrics["height"] = min(max(height, 600), 4000)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        driver.save_screenshot(str(folder / f"{name}-{label}.png"))
        # nothing may stick out sideways on a phone
        wide = driver.execute_script("return document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at {width} px"
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def fill(driver, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)


def submit(driver) -> None:
    """Send the page's form and wait for the page the server answers with."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    before = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(before))


def page_text(driver) -> str:
    return text_of(driver.page_source)


def test_buying_the_coffee_link_shows_the_receipt_and_mails_it(site, browser, shots):
    browser.get(site.base + "/l/coffee-monthly")
    assert "Due now $25.00" in page_text(browser)
    photograph(browser, shots, "1-link")
    fill(browser, name="Ada Lovelace", email="ada@example.org", card="tok_visa")
    submit(browser)
    text = page_text(browser)
    assert "Thank you! Your payment of $25.00 was received." in text
    assert "A receipt was sent to ada@example.org." in text
    photograph(browser, shots, "2-confirmation")
    receipts = [m for m in site.mails() if m["To"] == "ada@example.org"]
    assert [m["Subject"] for m in receipts] == [
        "Receipt for your payment to Just One More Cup Coffee Co."]  # fmt: skip


def test_a_declined_card_shows_its_reason_and_keeps_the_form(site, browser, shots):
    from selenium.webdriver.common.by import By

    browser.get(site.base + "/l/coffee-monthly?lang=da")
    fill(browser, name="Grace Hopper", email="grace@example.org", card="tok_insufficient_funds")
    submit(browser)
    text = page_text(browser)
    assert "Dit kort blev afvist: utilstrækkelig dækning." in text
    assert browser.find_element(By.NAME, "email").get_attribute("value") == "grace@example.org"
    photograph(browser, shots, "3-declined-da")
    assert not [s for s in site.cli("subscriptions", "list") if s["contact_id"] == "grace"]


def test_an_invoice_link_is_opened_and_paid(site, browser, shots):
    (invoice,) = site.cli("invoices", "list", "--subscription", "bob-beans")
    html = run("--config", str(site.scenario.config), "--db", site.scenario.db_url, "invoices",
               "render", invoice["number"], env={"ABONNEMENT_LINK_SECRET": LINK_SECRET}).stdout  # fmt: skip
    url = re.search(r'href="(' + re.escape(site.base) + r'/i/[^"]+)"', html).group(1)
    browser.get(url)
    assert f"Invoice {invoice['number']} Amount due $37.50" in page_text(browser)
    photograph(browser, shots, "4-invoice")
    fill(browser, card="tok_visa")
    submit(browser)
    assert f"Invoice {invoice['number']} is paid: $37.50." in page_text(browser)
    photograph(browser, shots, "5-invoice-paid")
    assert site.cli("invoices", "show", invoice["number"])["status"] == "paid"
    browser.get(url)
    assert "This link is no longer valid" in page_text(browser)
    photograph(browser, shots, "6-link-no-longer-valid")


def test_a_failed_payment_e_mail_s_update_link_collects_the_arrears(site, browser, shots):
    (failed,) = [m for m in site.mails() if m["To"] == "bob@example.com"
                 and "failed" in m["Subject"]]  # fmt: skip
    url = re.search(re.escape(site.base) + r"/u/\S+", failed.get_body(("plain",)).get_content())
    browser.get(url.group(0))
    assert "$25.00 is past due." in page_text(browser)
    photograph(browser, shots, "7-update")
    fill(browser, card="tok_visa")
    submit(browser)
    assert "Your card is saved We collected: Invoice" in page_text(browser)
    photograph(browser, shots, "8-updated")
    assert site.cli("subscriptions", "show", "bob-coffee")["status"] == "active"
