"""The data pages in Chromium over a real gateway on loopback: activity, proof, my data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from neurogate.consent.activity import record_delivery
from tests.portal.conftest import PortalServer, axe_check, screenshot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def deliveries(portal_server: PortalServer) -> None:
    """A week of Mia's focus app receiving her focus level, counted as the gateway does."""
    gateway = portal_server.gateway()
    today = datetime.now(UTC).date()
    world = portal_server.world
    try:
        with gateway.transaction() as session:
            for back, messages in enumerate([1800, 2400, 0, 600, 3000, 1200, 900]):
                record_delivery(session=session, subject_id=world.subjects["mia"],
                                app_id=world.apps["focus"], purpose_id="neurofeedback",
                                day=today - timedelta(days=back), messages=messages,
                                seconds=messages / 2)
    finally:
        gateway.engine.dispose()


def test_activity_page_shows_the_chart_and_what_the_app_sees(page: Page) -> None:
    """Guardian: the per-day chart with its table, and focus index beside raw EEG."""
    sign_in(page, "parent.chen")
    page.goto("/portal/activity")
    chart = page.locator("svg.chart-bars")
    assert chart.get_attribute("role") == "img"
    assert chart.locator("g.series").count() == 1
    assert chart.locator("g.series rect").count() == 14
    screenshot(page, "activity")
    page.get_by_text("Show the same figures as a table").click()
    table = page.get_by_role("table", name="The same figures as a table")
    assert table.get_by_role("row").count() == 15  # the header and fourteen days
    assert page.locator("svg.chart-traces").count() == 2
    expect(page.get_by_text("This is an illustration")).to_be_visible()
    axe_check(page)


def test_proof_page_says_included_and_offers_the_download(page: Page,
                                                          portal_server: PortalServer) -> None:
    """Alex's consent: included in the newest checkpoint, proof downloadable."""
    sign_in(page, "alex")
    page.goto("/portal/proof")
    page.get_by_role("link", name="Ward EEG Monitor").click()
    expect(page.get_by_text("part of the gateway's public log")).to_be_visible()
    expect(page.get_by_text("Included").first).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the proof (JSON)").first.click()
    assert download.value.suggested_filename.startswith("receipt-")
    axe_check(page)


def test_my_data_page_downloads_the_archive_and_explains_erasure(page: Page) -> None:
    """In Spanish: the archive downloads; the erasure page says what stays; unticked, the
    erasure is refused with the error summary; Cancel goes back."""
    sign_in(page, "alex")
    page.goto("/portal/my-data")
    page.get_by_label("Language").select_option("es")
    with page.expect_navigation():
        page.get_by_role("button", name="Change language").click()
    assert page.locator("html").get_attribute("lang") == "es"
    expect(page.get_by_role("heading", name="Mis datos", exact=True)).to_be_visible()
    axe_check(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Descargar mis datos (.zip)").click()
    assert download.value.suggested_filename.endswith(".zip")
    page.get_by_role("link", name="Pedir el borrado").click()
    expect(page.get_by_role("heading", name="Lo que no se borrará")).to_be_visible()
    page.get_by_role("button", name="Borrar mis datos ahora").click()
    expect(page.get_by_role("alert")).to_be_visible()  # the error summary: nothing erased
    expect(page.get_by_text("Marque la casilla para confirmar el borrado").first).to_be_visible()
    axe_check(page)
    page.get_by_role("link", name="Cancelar").click()
    expect(page.get_by_role("heading", name="Mis datos", exact=True)).to_be_visible()


@pytest.mark.parametrize(("locale", "lang", "heading"), [
    ("zh-CN", "zh-Hans", "应用收到了什么"), ("es", "es", "Lo que recibieron las aplicaciones")])
def test_data_pages_pass_axe_in_chinese_and_spanish(make_page: Callable[..., Page],
                                                    locale: str, lang: str,
                                                    heading: str) -> None:
    """Every data page of a guardian, in the browser's language, with no serious or critical
    accessibility violation."""
    page = make_page(locale=locale)
    sign_in(page, "parent.chen")
    page.goto("/portal/activity")
    assert page.locator("html").get_attribute("lang") == lang
    assert page.get_by_role("heading", level=1).inner_text() == heading
    axe_check(page)
    for path in ("/portal/proof", "/portal/my-data", "/portal/my-data/erase"):
        page.goto(path)
        assert page.locator("html").get_attribute("lang") == lang
        axe_check(page)
    page.goto("/portal/proof")
    page.locator("ul.consent-proofs a").first.click()
    axe_check(page)
