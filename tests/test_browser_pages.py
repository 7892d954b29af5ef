"""The comparison report and the listening page in a real browser: headless Debian Chromium
(/usr/bin/chromium) driven by Playwright with the system executable (Playwright downloads no
browser). Opened from disk (file://): no console error, the table and every image render,
every audio element has a playable source that loads, and clicking through the listening page
downloads preferences that ``load_preferences`` reads, with answers kept across a reload.

Skipped, with the reason, where Playwright or Chromium is missing (scripts/test.sh installs
Chromium where apt-get is available).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlmusic.config import validate_config
from rlmusic.critics import load_preferences
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.listening import key_path, write_listening_page
from rlmusic.tasks import compare
from tests.conftest import make_tiny_checkpoint
from tests.test_compare_task import compare_overrides, write_corpus
from tests.test_listen_page import two_columns

CHROMIUM = Path("/usr/bin/chromium")
# the flags that work on a closed-network, display-less machine (no sandbox as root)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium; scripts/test.sh does it as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # launch() starts the browser on a fresh temporary profile (its own --user-data-dir)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[tuple[object, list[str]]]:
    """A fresh page and the console errors and page errors it logs."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, errors
    context.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    write_corpus(tmp / "corpus")
    models = {"tiny": str(make_tiny_checkpoint(tmp)), "real": "heldout"}
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        # the audio as a user gets it: synth=auto (midirenderer's piano), 44.1 kHz
        overrides = compare_overrides(tmp, models, n=16, synth="auto", sample_rate=44100)
        cfg = compose("compare", overrides=overrides)
    return compare.run(validate_config("compare", cfg)).paths["html"]


def _check_images_and_audio(page) -> None:
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({complete: e.complete, width: e.naturalWidth}))"
    )
    assert images and all(i["complete"] and i["width"] > 0 for i in images), images
    playable = page.eval_on_selector_all("audio", "els => els.map(e => e.canPlayType('audio/wav'))")
    assert playable and all(playable), playable
    # every source loads: metadata read (readyState >= 1), no media error
    page.wait_for_function(
        "() => [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)",
        timeout=15000,
    )
    states = page.eval_on_selector_all(
        "audio", "els => els.map(e => ({error: e.error && e.error.code, duration: e.duration}))"
    )
    assert all(s["error"] is None and s["duration"] > 0 for s in states), states


def test_report_renders_with_players(page, report: Path) -> None:
    page, errors = page
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    rows = page.locator("#metrics tbody tr")
    assert rows.count() > 30
    assert page.locator("#metrics thead th").all_inner_texts() == ["metric", "A: tiny", "B: real"]
    assert page.locator("#metrics").bounding_box()["height"] > 500  # laid out, not hidden
    motif = page.locator("#metrics tbody tr", has_text="notes in motif (% of notes)").first
    value, ci = motif.locator("td").nth(1).inner_text().split(" ", 1)
    assert value.endswith("%") and ci.startswith("(") and ci.split(")")[0].endswith("%")
    _check_images_and_audio(page)
    assert page.locator("audio").count() == 4 and page.locator("img.roll").count() == 4
    assert errors == []


def test_listening_page_round_trip(page, tmp_path: Path) -> None:
    page, errors = page
    out = tmp_path / "listen"
    html = write_listening_page(two_columns(4), MelodyEncoding(), out, pairs=4)
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    _check_images_and_audio(page)
    assert page.locator("#download").is_disabled()
    verdicts = {"p00": "a", "p01": "tie", "p02": "b", "p03": "a"}
    for pair_id, verdict in verdicts.items():
        page.click(f'section[data-pair-id="{pair_id}"] button[data-verdict="{verdict}"]')
    page.click('section[data-pair-id="p03"] button[data-verdict="b"]')  # a change of mind
    verdicts["p03"] = "b"
    assert page.inner_text("#progress") == "4 of 4 pairs answered"

    page.reload()  # the answers survive (localStorage)
    page.wait_for_load_state("load")
    chosen = page.eval_on_selector_all(
        "section.pair",
        "els => els.map(e => [e.dataset.pairId, "
        "e.querySelector('button.chosen') && e.querySelector('button.chosen').dataset.verdict])",
    )
    assert dict(chosen) == verdicts

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "preferences.json"
    saved = tmp_path / "preferences.json"
    download.save_as(saved)
    preferences = load_preferences(saved, samples_dir=out / "samples")
    assert {p.pair_id: p.preferred for p in preferences} == verdicts
    key = json.loads(key_path(out).read_text())
    for preference in preferences:
        shown_a = key["samples"][preference.sample_a.stem]["model"]
        assert shown_a == key["pairs"][preference.pair_id]["a"]
    assert errors == []
    shutil.rmtree(out)
