"""Tracks from a local fake of the Spotify Web API, cached in Redis; a search link without Spotify."""

from __future__ import annotations

from emotune_common.spotify_links import search_url
from emotune_recommender.tracks import SpotifyConfig, TrackLookup

from ..fakes.spotify import FakeSpotify


def config(fake: FakeSpotify) -> SpotifyConfig:
    return SpotifyConfig(client_id="id", client_secret="secret", api_url=fake.api_url, accounts_url=fake.accounts_url)


async def test_top_tracks_come_from_spotify_once_then_from_the_cache(aredis, names):
    with FakeSpotify({"Radiohead": ["Creep", "Karma Police", "No Surprises", "Airbag"]}) as fake:
        lookup = TrackLookup(aredis, config(fake))
        await aredis.delete("emotune:tracks:radiohead")
        link, tracks = await lookup.tracks("Radiohead")
        assert link.startswith("https://open.spotify.com/artist/")
        assert [t.name for t in tracks] == ["Creep", "Karma Police", "No Surprises"]
        assert tracks[0].spotify_url.startswith("https://open.spotify.com/track/") and tracks[0].album_art_url
        again = await lookup.tracks("radiohead")
        assert again == (link, tracks)
        assert fake.calls["search"] == 1 and fake.calls["token"] == 1
        await aredis.delete("emotune:tracks:radiohead")


async def test_without_credentials_or_when_spotify_fails_there_is_a_search_url(aredis):
    link, tracks = await TrackLookup(aredis, SpotifyConfig()).tracks("Sigur Rós")
    assert (link, tracks) == (search_url("Sigur Rós"), [])
    assert link == "https://open.spotify.com/search/Sigur%20R%C3%B3s"
    with FakeSpotify({"Björk": ["Joga"]}) as fake:
        fake.down = True
        lookup = TrackLookup(aredis, config(fake))
        assert await lookup.tracks("Björk") == (search_url("Björk"), [])
        assert not await aredis.exists("emotune:tracks:bjork")  # a failure is not cached
        unknown = await TrackLookup(aredis, config(fake)).tracks("Nobody Knows Them")
        assert unknown[1] == []
