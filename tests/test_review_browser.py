"""The review pages in a real browser: the system's headless Chromium driven by Playwright.

A real tiny build (random-weight pipelines), reviewed by keyboard and mouse in two tabs, then
rebuilt: the rejected images come back `manual_reject` and the concept is topped up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("system Chromium (/usr/bin/chromium) is not installed: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")

from isekai_gen.build import run_build
from isekai_gen.config import BuildConfig, with_overrides
from isekai_gen.manifest import read_manifest
from isekai_gen.review.app import make_server

from generation_helpers import tiny_config
from test_review import running

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def review_config() -> BuildConfig:
    """One group, 6 images per concept; 4 kept needed, so three rejects starve a concept."""
    return with_overrides(tiny_config(images_per_concept=6, batch_size=8), [{
        "concepts": ["cactihog", "hedgehog"], "filter": {"min_per_concept": 4},
        "episodes": {"max_shot": 2, "queries_per_concept": 1,
                     "pair": {"enabled": False}}}], "test")   # pair needs two ISEKAI concepts


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def states(page) -> list[str]:
    return page.eval_on_selector_all("#grid .tile", "tiles => tiles.map(t => t.dataset.state)")


def wait_for_state_count(page, state: str, count: int) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(`#grid .tile[data-state='${s}']`).length === n",
                           arg=[state, count])


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def images_loaded(page, selector: str) -> bool:
    return page.eval_on_selector_all(selector, "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


def test_review_reject_undo_reload_and_rebuild(browser, tmp_path, isekai_cache):
    out = tmp_path / "build"
    config = review_config()
    run_build(config, out, progress=False)
    rows = {r["job_id"]: r for r in read_manifest(out)}
    cactihog = sorted((r for r in rows.values() if r["concept_id"] == "cactihog"),
                      key=lambda r: (r["scores"]["alignment"], r["index"]))
    kept_before = sum(r["kept"] for r in cactihog)
    assert kept_before >= 4

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    with running(make_server(out, port=0)[0]) as (host, port):
        base = f"http://{host}:{port}"
        page = context.new_page()
        open_page(page, base + "/")
        assert [c.get_attribute("data-concept") for c in page.locator(".group .concept").all()] == ["cactihog", "hedgehog"]
        assert "Smoke-test build: 12 images" in page.inner_text("#smoke-banner")
        assert "No decisions pending" in page.inner_text("#pending-banner")
        assert page.locator("[data-concept=cactihog] .strip img").count() == min(8, kept_before)
        assert f"kept {kept_before} / 6 generated" in page.inner_text("[data-concept=cactihog] .counts")
        page.wait_for_load_state("networkidle")
        assert images_loaded(page, ".strip img")
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        page.click("[data-concept=cactihog] h3 a")
        page.wait_for_selector("body[data-ready='1'] #grid .tile")
        # Sorted by alignment, ascending: the doubtful images first.
        order = page.eval_on_selector_all("#grid .tile", "tiles => tiles.map(t => t.dataset.job)")
        assert order == [r["job_id"] for r in cactihog]
        assert page.locator("#partner-strip img").count() == sum(r["kept"] for r in rows.values() if r["concept_id"] == "hedgehog")

        for _ in range(3):                         # three by keyboard (each moves to the next image)
            page.keyboard.press("x")
        wait_for_state_count(page, "manual_reject (pending)", 3)
        page.locator("#grid .tile").nth(4).locator(".toggle").click()   # one by click
        wait_for_state_count(page, "manual_reject (pending)", 4)
        page.keyboard.press("u")                   # undo the click
        wait_for_state_count(page, "manual_reject (pending)", 3)
        assert states(page)[3:5] == ["kept", "kept"]
        rejected = order[:3]
        assert (out / "manual_rejects.txt").read_text() == "".join(f"{j}\n" for j in sorted(rejected))
        assert "3 decisions pending a rebuild" in page.inner_text("#pending-banner")
        assert f"isekai-gen build --preset tiny --out {out}" in page.inner_text("#pending-banner")

        page.locator("#grid .tile").nth(5).click()  # details: prompt, seed, full-size image
        assert page.inner_text("#detail-job") == order[5]
        assert rows[order[5]]["prompt"] in page.inner_text("#detail-prompt")
        assert f"seed{rows[order[5]]['seed']}" in page.inner_text("#details table").replace("\t", "")
        page.wait_for_function("() => document.querySelector('#detail-full img').naturalWidth === 64")

        page.reload()
        page.wait_for_selector("body[data-ready='1'] #grid .tile")
        assert states(page)[:3] == ["manual_reject (pending)"] * 3 and "kept" == states(page)[3]
        page.select_option("#filter", "manual_reject (pending)")
        assert page.locator("#grid .tile").count() == 3
        page.screenshot(path=str(tmp_path / "concept.png"), full_page=True)

        # A second tab decides too; its undo reverts its own decision only.
        other = context.new_page()
        open_page(other, base + "/concept/hedgehog")
        hedgehog_first = other.get_attribute("#grid .tile >> nth=0", "data-job")
        other.keyboard.press("x")
        wait_for_state_count(other, "manual_reject (pending)", 1)
        other.keyboard.press("u")
        wait_for_state_count(other, "manual_reject (pending)", 0)
        assert (out / "manual_rejects.txt").read_text().split() == sorted(rejected)
        other.keyboard.press("x")                  # undo selected the restored image: reject it again
        wait_for_state_count(other, "manual_reject (pending)", 1)
        assert (out / "manual_rejects.txt").read_text().split() == sorted([*rejected, hedgehog_first])

        run_build(config, out, progress=False)
        after = read_manifest(out)
        by_id = {r["job_id"]: r for r in after}
        assert [by_id[j]["reject_reason"] for j in [*rejected, hedgehog_first]] == ["manual_reject"] * 4
        topped_up = [r for r in after if r["round"] == 1]
        assert topped_up and {r["concept_id"] for r in topped_up} == {"cactihog"}
        assert sum(r["kept"] for r in after if r["concept_id"] == "cactihog") >= 4

        page.reload()
        page.wait_for_selector("body[data-ready='1'] #grid .tile")
        assert "No decisions pending" in page.inner_text("#pending-banner")
        page.select_option("#filter", "manual_reject")
        assert sorted(page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)")) == sorted(rejected)
        page.select_option("#filter", "all")
        assert page.locator("#grid .tile").count() == sum(r["concept_id"] == "cactihog" for r in after)
    context.close()
    assert (tmp_path / "overview.png").stat().st_size > 0 and (tmp_path / "concept.png").stat().st_size > 0


def test_concept_page_pages_filters_sorts_and_shows_duplicate_clusters(browser, tmp_path):
    """A synthetic filtered build (test double of a real one): 108 candidates, one near-duplicate."""
    from test_episodes import make_catalog, set_manifest_field, write_build

    out = write_build(tmp_path / "build", make_catalog(1), kept={"iso0": 105, "real0": 3}, rejected=2)
    set_manifest_field(out, "iso0-00004", kept=False, reject_reason="duplicate", duplicate_of="iso0-00007")
    rows = {r["job_id"]: r for r in read_manifest(out)}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with running(make_server(out, port=0)[0]) as (host, port):
        # The address keeps the sort, order, filter and page choices across reloads.
        open_page(page, f"http://{host}:{port}/concept/iso0#sort=index&order=asc&filter=all&page=0")
        jobs = page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)")
        assert jobs == [f"iso0-{i:05d}" for i in range(100)]
        assert page.inner_text("#pageinfo") == "page 1 of 2 (108 images)"

        page.click("#grid .tile[data-job='iso0-00004']")
        assert "near-duplicate of survivor iso0-00007" in page.inner_text("#detail-duplicate")
        page.wait_for_function("() => document.querySelector('#detail-duplicate img').naturalWidth > 0")
        page.click("#grid .tile[data-job='iso0-00007']")
        assert "survivor of 1 near-duplicate(s): iso0-00004" in page.inner_text("#details")

        page.check("#group-dups")                  # the cluster as a group: the survivor, then its duplicate
        jobs = page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)")
        assert jobs[jobs.index("iso0-00007") + 1] == "iso0-00004" and jobs.count("iso0-00004") == 1
        assert page.inner_text("#grid .tile[data-job='iso0-00004'] .cluster") == "≈ iso0-00007"
        page.uncheck("#group-dups")
        page.click("#grid .tile[data-job='iso0-00099']")
        page.keyboard.press("ArrowRight")           # past the page's end: the next page, its first image
        assert page.inner_text("#pageinfo") == "page 2 of 2 (108 images)"
        assert page.get_attribute("#grid .tile.current", "data-job") == "iso0-00100"
        assert page.inner_text("#detail-job") == "iso0-00100"
        page.click("#grid .tile[data-job='iso0-00107']")   # the failed job: no image, nothing to reject
        assert page.get_attribute("#grid .tile.current", "data-state") == "broken"
        assert page.locator("#grid .tile.current .toggle").count() == 0
        page.keyboard.press("x")
        page.click("#grid .tile[data-job='iso0-00106']")
        page.keyboard.press("x")                    # decisions run in key order: this one after that one
        wait_for_state_count(page, "manual_reject (pending)", 1)
        assert (out / "manual_rejects.txt").read_text() == "iso0-00106\n"

        page.select_option("#filter", "duplicate")
        assert page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)") == ["iso0-00004"]
        page.select_option("#filter", "low_alignment")     # iso0-00106 shows its pending decision instead
        assert page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)") == ["iso0-00105"]
        page.select_option("#filter", "rejected")
        assert page.locator("#grid .tile").count() == 4    # duplicate, low_alignment, pending, failed
        page.select_option("#filter", "all")
        page.select_option("#sort", "margin")
        page.select_option("#order", "desc")
        by_margin = sorted((r for r in rows.values() if r["concept_id"] == "iso0" and r["scores"]),
                           key=lambda r: (-r["scores"]["margin"], r["index"]))
        assert page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)") == [r["job_id"] for r in by_margin[:100]]
        page.reload()
        page.wait_for_selector("body[data-ready='1'] #grid .tile")
        assert page.input_value("#sort") == "margin" and page.input_value("#order") == "desc"
    page.close()


def start_review_server(out: Path, port: int):
    """`isekai-gen review` as its own process (so it can be killed -9); waits until it answers."""
    import http.client
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "isekai_gen", "review", str(out), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/state")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"review server did not start: {process.stderr.read().decode()}")


def listed(out: Path) -> list[str]:
    path = out / "manual_rejects.txt"
    return path.read_text().split() if path.exists() else []


def test_keyboard_bulk_two_tabs_and_a_killed_server(browser, tmp_path):
    """Two tabs on a synthetic filtered build (test double of a real one), the server a process of its own."""
    import socket

    from isekai_gen.curation import decisions
    from test_episodes import make_catalog, write_build

    out = write_build(tmp_path / "build", make_catalog(2), kept=6, rejected=2)
    iso0 = sorted((r for r in read_manifest(out) if r["concept_id"] == "iso0" and r["scores"]), key=lambda r: r["index"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_review_server(out, port)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        url = f"http://127.0.0.1:{port}/concept/iso0#sort=index&order=asc&filter=all&page=0"
        a, b = context.new_page(), context.new_page()
        open_page(a, url)
        open_page(b, url)
        pending = "manual_reject (pending)"

        a.keyboard.press("?")                                   # the help overlay lists every key
        assert a.is_visible("#help") and "next / previous concept" in a.inner_text("#help")
        a.keyboard.press("Escape")
        assert not a.is_visible("#help")

        # Tab B sees tab A's decision by itself (no focus, no reload); counts and banners follow.
        a.keyboard.press("x")                                   # iso0-00000
        wait_for_state_count(b, pending, 1)
        assert "1 decision pending a rebuild" in b.inner_text("#pending-banner")
        assert "kept 6 (5 once the pending decisions are applied) / 9 generated" in b.inner_text("#counts")
        assert "Smoke-test build: 36 images" in b.inner_text("#smoke-banner")   # survives the decision
        assert pending in b.eval_on_selector_all("#filter option", "o => o.map(x => x.value)")

        # B restores it and rejects it again; A's undo must not restore it behind B's back.
        b.click("#grid .tile[data-job='iso0-00000']")
        b.keyboard.press("r")
        wait_for_state_count(b, pending, 0)
        b.click("#grid .tile[data-job='iso0-00000']")
        b.keyboard.press("x")
        wait_for_state_count(b, pending, 1)
        a.keyboard.press("u")
        a.wait_for_selector("#error-banner")
        assert a.inner_text("#error-banner") == "undo refused: changed since by another tab (iso0-00000 is rejected)"
        assert listed(out) == ["iso0-00000"]

        # Shift-click a range, one `x` for all of it, one `u` to take it back.
        a.click("#grid .tile[data-job='iso0-00001']")
        a.click("#grid .tile[data-job='iso0-00003']", modifiers=["Shift"])
        assert a.locator("#grid .tile.selected").count() == 3
        a.keyboard.press("x")
        wait_for_state_count(a, pending, 4)
        a.keyboard.press("u")
        wait_for_state_count(a, pending, 1)
        assert listed(out) == ["iso0-00000"]

        # Everything below an alignment threshold, then everything the filter shows: one decision each.
        threshold = sorted(r["scores"]["alignment"] for r in iso0)[4]
        below = sorted(r["job_id"] for r in iso0 if r["scores"]["alignment"] < threshold)
        a.fill("#below", str(threshold))
        a.click("#reject-below")
        wait_for_state_count(a, pending, len({"iso0-00000", *below}))
        assert set(listed(out)) == {"iso0-00000", *below}
        a.keyboard.press("u")
        wait_for_state_count(a, pending, 1)
        a.select_option("#filter", "low_alignment")
        a.click("#reject-shown")
        wait_for_state_count(a, pending, 2)
        assert listed(out) == ["iso0-00000", "iso0-00006", "iso0-00007"]
        a.keyboard.press("u")
        wait_for_state_count(a, "low_alignment", 2)
        a.select_option("#filter", "all")

        # A reject for a reason (key 2: artefact) writes it after the id; the tile shows it.
        a.click("#grid .tile[data-job='iso0-00002']")
        a.keyboard.press("2")
        wait_for_state_count(a, pending, 2)
        assert (out / "manual_rejects.txt").read_text() == "iso0-00000\niso0-00002  # artefact\n"
        assert a.inner_text("#grid .tile[data-job='iso0-00002'] .verdict") == "manual_reject (pending) · artefact"
        a.keyboard.press("u")
        wait_for_state_count(a, pending, 1)

        # Progress: every decision so far counts as reviewed; `k` marks the current image as looked at.
        a.click("#grid .tile[data-job='iso0-00004']")
        a.keyboard.press("k")
        a.wait_for_selector("#grid .tile.reviewed[data-job='iso0-00004']")
        reviewed_here = sorted({"iso0-00000", "iso0-00001", "iso0-00002", "iso0-00003", "iso0-00004",
                                "iso0-00006", "iso0-00007", *below})
        assert a.inner_text("#progress") == f"{len(reviewed_here)} of 8 reviewed here · {len(reviewed_here)} of 32 in the build"
        a.select_option("#filter", "unreviewed")
        assert a.eval_on_selector_all("#grid .tile", "t => t.map(x => x.dataset.job)") == sorted(
            f"iso0-{i:05d}" for i in range(8) if f"iso0-{i:05d}" not in reviewed_here)
        a.select_option("#filter", "all")

        open_page(b, f"http://127.0.0.1:{port}/")              # the overview: progress and pending-aware counts
        assert b.inner_text("#totals").endswith(f"{len(reviewed_here)} of 32 reviewed")
        assert b.inner_text("[data-concept=iso0] .progress") == f"reviewed {len(reviewed_here)} / 8"
        assert "kept 6 (5 once the pending decisions are applied) / 9 generated" in b.inner_text("[data-concept=iso0] .counts")

        # Next / previous concept keys walk the overview's order (iso0's partner real0 comes next).
        a.keyboard.press("n")
        a.wait_for_url("**/concept/real0")
        a.wait_for_selector("body[data-ready='1']")
        a.keyboard.press("p")
        a.wait_for_url("**/concept/iso0")
        a.wait_for_selector("body[data-ready='1'] #grid .tile")

        # The server is killed: a decision waits, named, and is saved once it is back.
        server.kill()
        server.wait(10)
        a.click("#grid .tile[data-job='iso0-00005']")
        a.keyboard.press("x")
        a.wait_for_selector("#failed-banner")
        assert "1 decision not saved yet" in a.inner_text("#failed-banner") and "reject iso0-00005" in a.inner_text("#failed-banner")
        assert listed(out) == ["iso0-00000"]
        server = start_review_server(out, port)
        a.wait_for_selector("#failed-banner", state="detached", timeout=15000)
        wait_for_state_count(a, pending, 2)
        assert listed(out) == ["iso0-00000", "iso0-00005"]
        assert set(listed(out)) == decisions.replay(decisions.read_history(out))
    finally:
        context.close()
        server.kill()
        server.wait(10)
