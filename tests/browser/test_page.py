"""The web page end to end, in real headless Chromium with a fake camera playing the sample video,
against every service running as a process: sign in, camera, live mood, playlist, skip, Spotify,
deleting my data. Screenshots go to tests/browser/artifacts/."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
import redis

from emotune_common.keys import user_key
from emotune_common.labels import EMOTIONS

from ..processes import PATIENCE_S
from .conftest import ARTIFACTS
from .system import EmotuneSystem

pytestmark = pytest.mark.slow

ROWS = "#recs > li.rec"
PATIENCE_MS = int(PATIENCE_S * 1000)  # what the page may take to show each change, at most


def api(system: EmotuneSystem, key: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{system.gateway_url}{path}", method=method, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def artist_ids(page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.artistId)")


def test_camera_to_mood_to_playlist_and_skip(page, system: EmotuneSystem):
    from playwright.sync_api import expect

    key = system.create_user("e2e")
    page.goto(f"{system.gateway_url}/#key={key}")
    expect(page.locator("#user-name")).to_have_text("e2e")
    assert "key=" not in page.url  # the key leaves the address bar for local storage
    assert page.evaluate("localStorage.getItem('emotune.key')") == key
    expect(page.locator("#camera-badge")).to_have_text("camera off")

    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#camera-badge")).to_have_text("\u25cf camera on")
    expect(page.get_by_role("button", name="Stop camera")).to_be_visible()

    # faces of the video -> capture -> inference -> the page, within a minute
    expect(page.locator("#emotion-label")).to_have_text(re.compile(f"^({'|'.join(EMOTIONS)})$"), timeout=PATIENCE_MS)
    expect(page.locator("#emotion-confidence")).to_have_text(re.compile(r"^\d{1,3}%$"))
    expect(page.locator("#legend .value").first).to_have_text(re.compile(r"^\d{1,3}%$"))
    expect(page.locator("#mood-label")).to_have_text(re.compile(f"({'|'.join(EMOTIONS)})$"), timeout=PATIENCE_MS)

    rows = page.locator(ROWS)
    expect(rows.nth(4)).to_be_visible(timeout=PATIENCE_MS)
    for i in range(5):  # every row: an artist and track titles with Spotify links
        row = rows.nth(i)
        expect(row.locator(".artist")).not_to_have_text("")
        expect(row.locator("a.track").first).to_have_text(re.compile(r"\w+ \w+"))
        assert row.locator("a.track").first.get_attribute("href").startswith("https://open.spotify.com/track/")
    assert int(page.locator("#frames-sent").inner_text()) > 0

    before = artist_ids(page)
    skipped = before[0]
    rows.first.get_by_role("button", name=re.compile("^Skip")).click()
    expect(page.locator(f'{ROWS}[data-artist-id="{skipped}"]')).to_have_count(0, timeout=PATIENCE_MS)
    page.wait_for_function(
        "before => [...document.querySelectorAll('#recs > li.rec')].some(r => !before.includes(r.dataset.artistId))",
        arg=before, timeout=PATIENCE_MS,
    )  # fmt: skip
    after = artist_ids(page)
    assert skipped not in after and len(after) >= 5
    expect(page.locator("#status")).to_contain_text("Skipped")

    # the gateway restarts: the page reconnects, resumes from its last event id, and carries on
    with page.expect_websocket(timeout=PATIENCE_MS) as reconnected:
        system.restart_gateway()
    assert "last_event_id=" in reconnected.value.url
    expect(page.locator("#live-state")).to_have_text("live", timeout=PATIENCE_MS)
    sent = int(page.locator("#frames-sent").inner_text())
    page.wait_for_function(f"() => Number(document.getElementById('frames-sent').textContent) > {sent + 4}")

    page.get_by_text("uplift", exact=True).click()
    expect(page.locator("#playlist-meta")).to_contain_text("uplift", timeout=PATIENCE_MS)
    assert skipped not in artist_ids(page)

    page.wait_for_timeout(1_500)  # a few more points on the chart
    page.screenshot(path=str(ARTIFACTS / "desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page is wider than a phone"
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)

    page.get_by_role("button", name="Stop camera").click()
    expect(page.locator("#camera-badge")).to_have_text("camera off")
    sessions = api(system, key, "GET", "/v1/users/e2e/sessions")
    expect(page.locator("#status.error:visible")).to_have_count(0)
    assert sessions[0]["state"] == "stopped" and sessions[0]["frames"] > 0
    assert page.errors == []


def test_sign_in_playlist_controls_spotify_and_deleting_my_data(page, system: EmotuneSystem):
    from playwright.sync_api import expect

    key = system.create_user("e2e-spotify")
    api(system, key, "POST", "/v1/users/e2e-spotify/sessions", {"source": "upload"})  # as another client would
    page.goto(system.gateway_url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("et_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#status")).to_contain_text("not accepted")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-name")).to_have_text("e2e-spotify")
    rows = page.locator(ROWS)
    expect(rows.nth(4)).to_be_visible(timeout=PATIENCE_MS)  # the newest session's playlist

    genre = page.locator("#genre-select option").nth(1).get_attribute("value")
    page.get_by_label("Genre", exact=True).select_option(genre)
    expect(page.locator("#status")).to_contain_text(f"Genre: {genre}")
    page.wait_for_function(
        "g => { const rows = [...document.querySelectorAll('#recs > li.rec')];"
        " return rows.length > 0 && rows.every(r => r.dataset.genres.split('|').includes(g)); }",
        arg=genre, timeout=PATIENCE_MS,
    )  # fmt: skip
    liked = artist_ids(page)[0]
    rows.first.get_by_role("button", name=re.compile("^Like")).click()
    expect(page.locator("#status")).to_contain_text("Liked")
    assert redis.Redis.from_url(system.redis.url).sismember(user_key("e2e-spotify", "liked"), liked)

    page.get_by_label("player").check()  # the embedded player of the selected (first) row, and no other
    expect(page.locator("iframe.embed")).to_have_count(1)
    assert page.locator("iframe.embed").get_attribute("src").startswith("https://open.spotify.com/embed/track/")
    played = artist_ids(page)[1]
    rows.nth(1).get_by_role("button", name=re.compile("^Play")).click()
    # played counts as liked: the fresh list leaves the artist out, the page keeps it on show with its player
    expect(page.locator(f'{ROWS}[data-artist-id="{played}"]')).to_have_count(0, timeout=PATIENCE_MS)
    expect(page.locator(f'#pinned li[data-artist-id="{played}"] iframe.embed')).to_have_count(1)
    expect(page.locator("iframe.embed")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "player.png"), full_page=True)

    expect(page.locator("#spotify-status")).to_contain_text("Not connected")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Connect Spotify").click()
    tab = opened.value
    expect(tab.locator("h1")).to_have_text("Spotify connected")  # the fake agrees at once
    tab.close()
    expect(page.locator("#spotify-status")).to_contain_text("Connected", timeout=PATIENCE_MS)
    page.get_by_role("button", name="Save as playlist").click()
    expect(page.locator("#spotify-result")).to_contain_text("emotune: neutral", timeout=PATIENCE_MS)
    (made,) = system.spotify.playlists_of("fakeuser")
    assert len(made.uris) >= 5

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete my data").click()
    expect(page.locator("#status")).to_contain_text("Deleted")
    expect(rows).to_have_count(0)
    expect(page.locator("#spotify-status")).to_contain_text("Not connected")
    assert api(system, key, "GET", "/v1/users/e2e-spotify/sessions") == []

    page.get_by_role("link", name="sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('emotune.key')") is None
    assert page.errors == []
