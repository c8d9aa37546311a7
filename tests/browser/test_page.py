"""The web page end to end, in real headless Chromium with a fake camera playing the sample video,
against every service running as a process: sign in, camera, live mood, the playlist of tracks and
its player (play, skip, like, dislike, a track's end, a new list that leaves the track playing alone),
a new listener's first list, Spotify (playing on the listener's own device too), deleting my data.
Screenshots go to tests/browser/artifacts/.

The tests have no network: open.spotify.com is answered here (see :func:`offline_spotify`), so the
page's player falls back to a plain embed, and the tests say "the track ended" through the page's hook
``window.emotune.player.ended()`` (static/player.js)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from emotune_common.keys import user_key
from emotune_common.labels import EMOTIONS

from ..processes import PATIENCE_S
from .conftest import ARTIFACTS
from .system import EmotuneSystem

pytestmark = pytest.mark.slow

ROWS = "#recs > li.rec"
PLAYER = "#player"
EMBED = "#player iframe.embed"
TRACK_ID = re.compile(r"^[A-Za-z0-9]+$")  # Spotify's are 22 characters; the fake Spotify's are shorter
MOOD_TAGS = ("happy/energetic", "calm/content", "sad/melancholic", "tense/angry")
PATIENCE_MS = int(PATIENCE_S * 1000)  # what the page may take to show each change, at most
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
EMBED_STAND_IN = (
    "<!doctype html><body style='margin:0;height:80px;display:flex;align-items:center;padding:0 16px;"
    "background:#282828;color:#fff;font:14px sans-serif'>Spotify embed (a stand-in: the tests have no network)"
)

# the row after the one playing, read in the page in the same turn as the action that moves on to it
NEXT_AND = """action => {
  const rows = [...document.querySelectorAll('#recs > li.rec')];
  const at = rows.findIndex((r) => r.classList.contains('playing'));
  const next = rows[at + 1] ? rows[at + 1].dataset.trackId : null;
  if (action === 'skip') document.getElementById('player-skip').click();
  if (action === 'dislike') document.getElementById('player-dislike').click();
  if (action === 'ended') window.emotune.player.ended();
  window.embedAtStart = document.querySelector('#player iframe');
  return next;
}"""


def api(system: EmotuneSystem, key: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{system.gateway_url}{path}", method=method, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def stored(system: EmotuneSystem) -> redis.Redis:
    """The Redis where the recommender keeps what each listener did (emotune_common.keys)."""
    return redis.Redis.from_url(system.redis.url, decode_responses=True)


def recorded(system: EmotuneSystem, user: str, kind: str, track_id: str) -> bool:
    """Whether the recommender keeps ``track_id`` among ``user``'s tracks of ``kind`` (liked, skipped,
    ...), in the user's key of that kind or in one per mood below it."""
    db = stored(system)
    key = user_key(user, kind)
    for name in [key, *db.scan_iter(match=f"{key}:*")]:
        kind_of = db.type(name)
        if kind_of == "set" and db.sismember(name, track_id):
            return True
        if kind_of == "zset" and db.zscore(name, track_id) is not None:
            return True
    return False


def offline_spotify(page) -> None:
    """open.spotify.com as the tests have it: the iFrame API's script fails to load (so the page's
    player is a plain iframe), and each embed is a stand-in page, so that screenshots show the player."""

    def answer(route):
        if "/embed/track/" in route.request.url:
            route.fulfill(content_type="text/html", body=EMBED_STAND_IN)
        else:
            route.abort()

    page.route("https://open.spotify.com/**", answer)


def track_ids(page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.trackId)")


def expect_playing(page, track_id: str) -> None:
    """The player plays ``track_id``: its state, its one embed on that track, its row marked."""
    from playwright.sync_api import expect

    player = page.locator(PLAYER)
    expect(player).to_have_attribute("data-state", "playing", timeout=PATIENCE_MS)
    expect(player).to_have_attribute("data-track-id", track_id, timeout=PATIENCE_MS)
    expect(player).to_have_attribute("data-mode", "iframe")  # the iFrame API did not load: the plain embed
    expect(page.locator("iframe")).to_have_count(1)  # one player on the page, no other
    expect(page.locator(EMBED)).to_have_attribute("src", f"https://open.spotify.com/embed/track/{track_id}")
    expect(page.locator(f"{ROWS}.playing")).to_have_attribute("data-track-id", track_id, timeout=PATIENCE_MS)


def player_command(page, system: EmotuneSystem, seen: int) -> dict:
    """The fake Spotify's player command after the first ``seen``, once it comes."""
    deadline = time.monotonic() + PATIENCE_S
    while len(system.spotify.player) <= seen and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(system.spotify.player) > seen, "no player command reached Spotify"
    return system.spotify.player[seen]


def expect_on_device(page, system: EmotuneSystem, track_id: str, seen: int) -> None:
    """``track_id`` plays on the listener's Spotify device: Spotify was told, the page has no embed."""
    from playwright.sync_api import expect

    assert player_command(page, system, seen) == {"user": "fakeuser", "action": "play",
                                                  "uris": [f"spotify:track:{track_id}"]}  # fmt: skip
    player = page.locator(PLAYER)
    expect(player).to_have_attribute("data-track-id", track_id, timeout=PATIENCE_MS)
    expect(player).to_have_attribute("data-state", "playing")
    expect(player).to_have_attribute("data-mode", "device")
    expect(page.locator("#player-embed")).to_have_text("On your Spotify device")
    expect(page.locator("iframe")).to_have_count(0)
    expect(page.locator(f"{ROWS}.playing")).to_have_attribute("data-track-id", track_id, timeout=PATIENCE_MS)


def feedback(page, action: str, do) -> tuple[dict, object]:
    """Run ``do()``; the page's feedback ``action`` that follows: what it sent, and what came back."""
    from playwright.sync_api import expect

    def wanted(response) -> bool:
        request = response.request
        return (request.method == "POST" and request.url.endswith("/feedback")
                and json.loads(request.post_data or "{}").get("action") == action)  # fmt: skip

    with page.expect_response(wanted, timeout=PATIENCE_MS) as answer:
        result = do()
    response = answer.value
    expect(page.locator("#status.error:visible")).to_have_count(0)
    assert response.status == 202, response.text()
    assert response.json()["applied"] is True  # the recommender took it in there and then
    return json.loads(response.request.post_data), result


def expect_rows(page, n: int = 5) -> None:
    """At least ``n`` rows, each a track: title, artist, mood tag, why, its Spotify page, ids."""
    from playwright.sync_api import expect

    rows = page.locator(ROWS)
    expect(rows.nth(n - 1)).to_be_visible(timeout=PATIENCE_MS)
    for i in range(n):
        row = rows.nth(i)
        track = row.get_attribute("data-track-id")
        assert TRACK_ID.match(track), track
        assert row.get_attribute("data-artist-id")
        expect(row.locator(".title")).not_to_have_text("")
        expect(row.locator(".artist")).not_to_have_text("")
        if row.locator(".mood-tag").count():  # a track from Spotify search may have none
            expect(row.locator(".mood-tag")).to_have_text(re.compile(f"^({'|'.join(MOOD_TAGS)})$"))
        expect(row.locator(".reason")).to_contain_text("taste")
        assert row.locator("a.open").get_attribute("href") == f"https://open.spotify.com/track/{track}"
        expect(row.get_by_role("button", name=re.compile("^Play "))).to_be_enabled()


def screenshots(page, name: str) -> None:
    """Full-page screenshots of ``name`` at desktop and phone sizes (and of the player, where it
    plays); the page fits a phone's width."""
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1_000)  # the chart and the embed redraw for the new size
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], f"wider than {size}"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)
        if page.locator(PLAYER).is_visible():
            # the player as seen there too: a full-page screenshot leaves an iframe out of view blank
            page.locator(PLAYER).scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{size}-player.png"))
    page.set_viewport_size(DESKTOP)


def test_camera_to_mood_to_tracks_play_skip_end_and_a_new_list(page, system: EmotuneSystem):
    from playwright.sync_api import expect

    offline_spotify(page)
    sets = []  # the recommendation sets the live events bring, as they come
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda frame: sets.append(frame) if '"recommendations"' in str(frame) else None))  # fmt: skip
    key = system.create_user("e2e")
    page.goto(f"{system.gateway_url}/#key={key}")
    expect(page.locator("#user-name")).to_have_text("e2e")
    assert "key=" not in page.url  # the key leaves the address bar for local storage
    assert page.evaluate("localStorage.getItem('emotune.key')") == key
    expect(page.locator("#camera-badge")).to_have_text("camera off")
    expect(page.locator(PLAYER)).to_have_attribute("data-state", "idle")

    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#camera-badge")).to_have_text("\u25cf camera on")
    expect(page.get_by_role("button", name="Stop camera")).to_be_visible()

    # faces of the video -> capture -> inference -> the page
    expect(page.locator("#emotion-label")).to_have_text(re.compile(f"^({'|'.join(EMOTIONS)})$"), timeout=PATIENCE_MS)
    expect(page.locator("#emotion-confidence")).to_have_text(re.compile(r"^\d{1,3}%$"))
    expect(page.locator("#legend .value").first).to_have_text(re.compile(r"^\d{1,3}%$"))
    expect(page.locator("#mood-label")).to_have_text(re.compile(f"({'|'.join(EMOTIONS)})$"), timeout=PATIENCE_MS)
    expect_rows(page)
    assert int(page.locator("#frames-sent").inner_text()) > 0
    expect(page.locator("iframe")).to_have_count(0)  # nothing plays until asked

    # play: the row's track in the one embedded player
    second = track_ids(page)[1]
    page.locator(f'{ROWS}[data-track-id="{second}"]').get_by_role("button", name=re.compile("^Play ")).click()
    expect_playing(page, second)
    started = int(page.locator(PLAYER).get_attribute("data-started-at-us"))
    assert abs(started - time.time() * 1e6) < 600e6  # microseconds of the wall clock

    # skip: "skip" for it, and the next track plays; the skipped one leaves the list. The skip brings
    # a new list on the live events: it leaves the track playing alone (the same embed plays on)
    pushed = len(sets)
    sent, following = feedback(page, "skip", lambda: page.evaluate(NEXT_AND, "skip"))
    assert sent == {"action": "skip", "track_id": second}
    assert recorded(system, "e2e", "skipped", second)
    assert following and following != second
    expect_playing(page, following)
    expect(page.locator(f'{ROWS}[data-track-id="{second}"]')).to_have_count(0, timeout=PATIENCE_MS)
    expect(page.locator("#status")).to_contain_text("Skipped")
    deadline = time.monotonic() + PATIENCE_S
    while len(sets) <= pushed and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(sets) > pushed, "no recommendations came on the live events after the skip"
    page.wait_for_timeout(500)  # the page takes it in
    expect_playing(page, following)
    assert track_ids(page)[0] == following
    assert page.evaluate("document.querySelector('#player iframe') === window.embedAtStart"), "the embed was replaced"

    # the end of the track: "play" with when it began, and the next one starts
    began = int(page.locator(PLAYER).get_attribute("data-started-at-us"))
    sent, after = feedback(page, "play", lambda: page.evaluate(NEXT_AND, "ended"))
    assert sent == {"action": "play", "track_id": following, "started_at_us": began}
    assert recorded(system, "e2e", "played", following)
    assert after and after != following
    expect_playing(page, after)

    # a new list asked for (another policy) keeps the track playing first, the new list after it
    with page.expect_response(lambda r: "/recommendations" in r.url and "policy=uplift" in r.url) as fresh:
        page.get_by_text("uplift", exact=True).click()
    expect(page.locator("#playlist-meta")).to_contain_text("uplift", timeout=PATIENCE_MS)
    asked = [item["track_id"] for item in fresh.value.json()["items"] if item["track_id"] not in (after, second)]
    page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('#recs > li.rec')].map(r => r.dataset.trackId))"
        " === JSON.stringify(want)",
        arg=[after, *asked], timeout=PATIENCE_MS, polling="raf",
    )  # fmt: skip
    expect_playing(page, after)
    assert page.evaluate("document.querySelector('#player iframe') === window.embedAtStart"), "the embed was replaced"

    # the gateway restarts: the page reconnects, resumes from its last event id, and carries on
    with page.expect_websocket(timeout=PATIENCE_MS) as reconnected:
        system.restart_gateway()
    assert "last_event_id=" in reconnected.value.url
    expect(page.locator("#live-state")).to_have_text("live", timeout=PATIENCE_MS)
    sent_frames = int(page.locator("#frames-sent").inner_text())
    page.wait_for_function(f"() => Number(document.getElementById('frames-sent').textContent) > {sent_frames + 4}")
    expect_playing(page, after)
    assert second not in track_ids(page)

    page.wait_for_timeout(1_500)  # a few more points on the chart
    screenshots(page, "playing")

    page.get_by_role("button", name="Stop camera").click()
    expect(page.locator("#camera-badge")).to_have_text("camera off")
    sessions = api(system, key, "GET", "/v1/users/e2e/sessions")
    expect(page.locator("#status.error:visible")).to_have_count(0)
    assert sessions[0]["state"] == "stopped" and sessions[0]["frames"] > 0
    assert page.errors == []


def test_sign_in_genre_like_dislike_spotify_and_deleting_my_data(page, system: EmotuneSystem):
    from playwright.sync_api import expect

    offline_spotify(page)
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
    expect_rows(page)  # the newest session's playlist
    expect(page.locator("#taste")).not_to_have_attribute("open", "")  # not a new listener: no search at first

    genre = page.locator("#genre-select option").nth(1).get_attribute("value")
    page.get_by_label("Genre", exact=True).select_option(genre)
    expect(page.locator("#status")).to_contain_text(f"Genre: {genre}")
    page.wait_for_function(
        "g => { const rows = [...document.querySelectorAll('#recs > li.rec')];"
        " return rows.length > 0 && rows.every(r => r.dataset.genres.split('|').includes(g)); }",
        arg=genre, timeout=PATIENCE_MS,
    )  # fmt: skip

    first = track_ids(page)[0]
    page.locator(ROWS).first.get_by_role("button", name=re.compile("^Play ")).click()
    expect_playing(page, first)
    like = page.get_by_role("button", name="Like the track playing", exact=True)
    sent, _ = feedback(page, "like", like.click)
    assert sent == {"action": "like", "track_id": first}
    assert recorded(system, "e2e-spotify", "liked", first)
    expect(page.locator("#status")).to_contain_text("Liked")
    expect(page.locator("#player-like")).to_have_attribute("aria-pressed", "true")
    screenshots(page, "liked")

    # dislike: out of the list, and the next track plays
    sent, following = feedback(page, "dislike", lambda: page.evaluate(NEXT_AND, "dislike"))
    assert sent == {"action": "dislike", "track_id": first}
    assert recorded(system, "e2e-spotify", "disliked", first)
    expect(page.locator(f'{ROWS}[data-track-id="{first}"]')).to_have_count(0, timeout=PATIENCE_MS)
    if following:
        expect_playing(page, following)
    else:  # the genre's list had no other track
        expect(page.locator(PLAYER)).to_have_attribute("data-state", "idle")

    expect(page.locator("#spotify-status")).to_contain_text("Not connected")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Connect Spotify").click()
    tab = opened.value
    expect(tab.locator("h1")).to_have_text("Spotify connected")  # the fake agrees at once
    tab.close()
    expect(page.locator("#spotify-status")).to_contain_text("Connected", timeout=PATIENCE_MS)

    # connected: "Play on: this page | my Spotify device". Back to any genre, for a list to play on
    with page.expect_response(lambda r: "/recommendations" in r.url and "genre=" not in r.url) as fresh:
        page.get_by_label("Genre", exact=True).select_option("")
    last = [i["track_id"] for i in fresh.value.json()["items"] if i["track_id"] != first][-1]
    expect(page.locator(f'{ROWS}[data-track-id="{last}"]')).to_have_count(1, timeout=PATIENCE_MS)
    expect(page.get_by_text("Play on", exact=True)).to_be_visible()
    page.get_by_text("my Spotify device", exact=True).click()
    expect(page.locator("#play-on-device")).to_be_checked()

    # play: the track on the device (the gateway's /spotify/play, the fake Spotify's player)
    seen = len(system.spotify.player)
    target = track_ids(page)[0]
    page.locator(ROWS).first.get_by_role("button", name=re.compile("^Play ")).click()
    expect_on_device(page, system, target, seen)

    # like, skip and a track's end: the same feedback as on this page, and the device plays the next
    sent, _ = feedback(page, "like", like.click)
    assert sent == {"action": "like", "track_id": target}
    sent, following = feedback(page, "skip", lambda: page.evaluate(NEXT_AND, "skip"))
    assert sent == {"action": "skip", "track_id": target}
    assert following and following != target
    expect_on_device(page, system, following, seen + 1)
    began = int(page.locator(PLAYER).get_attribute("data-started-at-us"))
    sent, after = feedback(page, "play", lambda: page.evaluate(NEXT_AND, "ended"))
    assert sent == {"action": "play", "track_id": following, "started_at_us": began}
    assert after and after != following
    expect_on_device(page, system, after, seen + 2)
    screenshots(page, "on-device")

    # no active device: the gateway's reason on the status line, and the track plays on this page
    system.spotify.active_device = False
    try:
        seen = len(system.spotify.player)
        other = track_ids(page)[-1]
        page.locator(f'{ROWS}[data-track-id="{other}"]').get_by_role("button", name=re.compile("^Play ")).click()
        expect(page.locator("#status.error")).to_contain_text("no active Spotify device", timeout=PATIENCE_MS)
        expect_playing(page, other)
        expect(page.locator("#play-on-page")).to_be_checked()
        assert len(system.spotify.player) == seen
    finally:
        system.spotify.active_device = True

    page.get_by_role("button", name="Save as playlist").click()
    expect(page.locator("#spotify-result")).to_contain_text("emotune: neutral", timeout=PATIENCE_MS)
    (made,) = system.spotify.playlists_of("fakeuser")
    assert made.uris

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete my data").click()
    expect(page.locator("#status")).to_contain_text("Deleted")
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator(PLAYER)).to_have_attribute("data-state", "idle")  # the music stops with the data
    expect(page.locator("iframe")).to_have_count(0)
    expect(page.locator("#spotify-status")).to_contain_text("Not connected")
    expect(page.locator("#play-on")).to_be_hidden()  # no Spotify account: this page plays
    assert api(system, key, "GET", "/v1/users/e2e-spotify/sessions") == []

    page.get_by_role("link", name="sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('emotune.key')") is None
    assert page.errors == []


def test_a_new_listener_picks_artists_and_genres_and_gets_a_first_list(page, system: EmotuneSystem):
    from playwright.sync_api import expect

    offline_spotify(page)
    key = system.create_user("e2e-new")
    page.goto(f"{system.gateway_url}/#key={key}")
    expect(page.locator("#user-name")).to_have_text("e2e-new")
    search = page.get_by_role("searchbox", name="Search artists and genres")
    expect(search).to_be_visible()  # no session yet: a new listener, who sees the search first
    expect(page.locator(ROWS)).to_have_count(0)

    search.fill("rock")
    artist = page.locator("#taste-results .pick.artist").first
    genre = page.locator("#taste-results .pick.genre").first
    expect(artist).to_be_visible(timeout=PATIENCE_MS)
    expect(genre).to_be_visible()
    found = api(system, key, "GET", "/v1/catalogue/search?q=rock&limit=10")
    artist_name = found["artists"][0]["name"]
    genre_name = found["genres"][0]["name"]
    expect(artist.locator(".pick-name")).to_have_text(artist_name)
    expect(genre.locator(".pick-name")).to_have_text(genre_name)
    artist.click()
    genre.click()
    expect(page.locator("#taste-picked li")).to_have_count(2)
    expect(artist).to_have_attribute("aria-pressed", "true")
    screenshots(page, "new-listener")

    with page.expect_response(lambda r: r.url.endswith("/taste") and r.request.method == "PUT") as saved:
        page.get_by_role("button", name="Make my playlist").click()
    assert saved.value.status == 200
    assert json.loads(saved.value.request.post_data) == {
        "genres": [genre_name], "artist_ids": [found["artists"][0]["artist_id"]],
    }  # fmt: skip
    assert stored(system).smembers(user_key("e2e-new", "genres")) == {genre_name}
    assert stored(system).smembers(user_key("e2e-new", "artists")) == {found["artists"][0]["artist_id"]}
    expect(page.locator("#status")).to_contain_text("first list")
    expect_rows(page)  # the first list, at once: no camera, no history
    expect(search).to_be_hidden()
    rows = page.locator(ROWS).evaluate_all(
        "rows => rows.map(r => ({artist: r.dataset.artistId, genres: r.dataset.genres.split('|')}))"
    )
    picked = found["artists"][0]["artist_id"]
    assert any(r["artist"] == picked or genre_name in r["genres"] for r in rows), rows  # made of the picks
    assert len(api(system, key, "GET", "/v1/users/e2e-new/sessions")) == 1
    screenshots(page, "first-list")
    assert page.errors == []


def test_the_player_drives_spotifys_iframe_api_where_it_loads(page, system: EmotuneSystem):
    """Where Spotify's iFrame API loads (here a stand-in of its surface, fake_iframe_api.js), the
    player is one controller: it loads each track, and its playback_update events mark the end."""
    from playwright.sync_api import expect

    fake = (Path(__file__).parent / "fake_iframe_api.js").read_text()

    def answer(route):
        if "/embed/iframe-api/" in route.request.url:
            route.fulfill(content_type="text/javascript", body=fake)
        elif "/embed/track/" in route.request.url:
            route.fulfill(content_type="text/html", body=EMBED_STAND_IN)
        else:
            route.abort()

    page.route("https://open.spotify.com/**", answer)
    key = system.create_user("e2e-iframe-api")
    api(system, key, "POST", "/v1/users/e2e-iframe-api/sessions", {"source": "upload"})
    page.goto(f"{system.gateway_url}/#key={key}")
    page.wait_for_function("() => window.emotune && window.emotune.player.state().api === 'ready'")
    expect_rows(page)
    first = track_ids(page)[0]
    page.locator(ROWS).first.get_by_role("button", name=re.compile("^Play ")).click()
    page.wait_for_function("() => window.fakeSpotify.controllers.length === 1")
    player = page.locator(PLAYER)
    expect(player).to_have_attribute("data-mode", "api")
    expect(player).to_have_attribute("data-track-id", first)
    assert page.evaluate("window.fakeSpotify.log")[:2] == [["createController", f"spotify:track:{first}"], ["play"]]
    expect(page.locator("#player iframe")).to_have_attribute("src", f"https://open.spotify.com/embed/track/{first}")

    emit = "data => window.fakeSpotify.controllers[0].emit('playback_update', data)"
    page.evaluate(emit, {"isPaused": False, "isBuffering": False, "position": 1000, "duration": 30000})
    expect(player).to_have_attribute("data-state", "playing")
    page.evaluate(emit, {"isPaused": True, "isBuffering": False, "position": 5000, "duration": 30000})
    expect(player).to_have_attribute("data-state", "paused")
    page.evaluate(emit, {"isPaused": False, "isBuffering": False, "position": 6000, "duration": 30000})
    expect(player).to_have_attribute("data-state", "playing")
    began = int(player.get_attribute("data-started-at-us"))

    end = """data => {
      const rows = [...document.querySelectorAll('#recs > li.rec')];
      const next = rows[rows.findIndex((r) => r.classList.contains('playing')) + 1].dataset.trackId;
      window.fakeSpotify.controllers[0].emit('playback_update', data);
      return next;
    }"""
    sent, following = feedback(
        page, "play", lambda: page.evaluate(end, {"isPaused": False, "position": 30000, "duration": 30000})
    )
    assert sent == {"action": "play", "track_id": first, "started_at_us": began}
    expect(player).to_have_attribute("data-track-id", following)
    expect(player).to_have_attribute("data-state", "playing")
    log = page.evaluate("window.fakeSpotify.log")
    assert ["loadUri", f"spotify:track:{following}"] in log  # the same controller, the next track
    assert [entry[0] for entry in log].count("createController") == 1
    expect(page.locator("iframe")).to_have_count(1)
    assert page.errors == []
