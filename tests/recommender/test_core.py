"""The recommender's operations on the real data, with a real Redis and the fake Spotify."""

from __future__ import annotations

import pytest

from emotune.v1 import messages_pb2
from emotune_common.ids import make_header
from emotune_recommender.core import BadRequest, RecommenderCore, UnknownArtist, user_key
from emotune_recommender.data import load_music
from emotune_recommender.model import Hyper, Recommender
from emotune_recommender.tracks import SpotifyConfig, TrackLookup

from ..conftest import DATA_DIR
from ..fakes.spotify import FakeSpotify


@pytest.fixture(scope="module")
def trained():
    music = load_music(DATA_DIR)
    return music, Recommender.train(music, music.plays, Hyper(epochs=10))


@pytest.fixture
def core(trained, aredis, names):
    music, recommender = trained
    return RecommenderCore(recommender, 1, music.artists, aredis, TrackLookup(aredis, SpotifyConfig()))


def feedback(user: str, action: int, artist: str = "", mood: int = 0, genre: str = "") -> messages_pb2.Feedback:
    return messages_pb2.Feedback(header=make_header("s1", user), action=action, artist_id=artist, mood=mood,
                                 genre=genre)  # fmt: skip


async def test_a_known_listener_gets_ranked_artists_with_links_and_reasons(core):
    result = await core.recommend("lastfm:2", "s1", messages_pb2.SAD, 10, messages_pb2.UPLIFT, [])
    assert len(result.items) == 10 and result.mood == messages_pb2.SAD and result.policy == messages_pb2.UPLIFT
    assert (result.header.user_id, result.header.session_id, result.model_version) == ("lastfm:2", "s1", "1")
    for item in result.items:
        assert item.spotify_url.startswith("https://open.spotify.com/search/")
        assert 0 <= item.mood_fit <= 1 and "taste" in item.reason
    heard = {str(a) for a in core.recommender.inputs.item_ids[list(core.recommender.seen[core._users["lastfm:2"]])]}
    assert not heard & {i.artist_id for i in result.items}


async def test_skips_and_dislikes_leave_the_list_and_genre_changes_apply(core, names):
    user = f"{names.prefix}:alice"  # a new listener
    first = await core.recommend(user, "s1", messages_pb2.HAPPY, 10, 0, [])
    skipped, disliked = first.items[0].artist_id, first.items[1].artist_id
    refused = await core.feedback([feedback(user, messages_pb2.SKIP, skipped),
                                   feedback(user, messages_pb2.DISLIKE, disliked),
                                   feedback(user, messages_pb2.LIKE, "999999999"),
                                   feedback(user, messages_pb2.GENRE_CHANGE, genre="jazz")])  # fmt: skip
    assert list(refused) == [2] and "no artist" in refused[2]
    second = await core.recommend(user, "s1", messages_pb2.HAPPY, 10, 0, [])
    assert not {skipped, disliked} & {i.artist_id for i in second.items}
    assert sum("jazz" in i.genres for i in second.items) >= 8
    await core.redis.delete(*(user_key(user, k) for k in ("liked", "disliked", "skipped", "genres")))


async def test_likes_of_a_known_listener_teach_the_model(core):
    before = core.recommender.model.user_embeddings.copy()
    artist = str(core.recommender.inputs.item_ids[0])
    assert await core.feedback([feedback("lastfm:3", messages_pb2.LIKE, artist, messages_pb2.SAD)]) == {}
    assert (core.recommender.model.user_embeddings != before).any()
    await core.redis.delete(*(user_key("lastfm:3", k) for k in ("liked",)))


async def test_similar_artists_and_bad_requests(core):
    metallica = next(a for a, n in core.names.items() if n == "Metallica")
    similar = await core.similar(str(metallica), 5)
    assert len(similar) == 5 and all("similar" in s.reason for s in similar)
    with pytest.raises(UnknownArtist):
        await core.similar("nope", 5)
    for args, message in [(("", "s", messages_pb2.SAD, 10, 0, []), "user_id"),
                          (("u", "s", 0, 10, 0, []), "mood must be"),
                          (("u", "s", messages_pb2.SAD, 500, 0, []), "k must be"),
                          (("u", "s", messages_pb2.SAD, 10, 9, []), "policy")]:  # fmt: skip
        with pytest.raises(BadRequest, match=message):
            await core.recommend(*args)


async def test_tracks_come_from_spotify_when_it_is_configured(trained, aredis):
    music, recommender = trained
    with FakeSpotify({"Metallica": ["One", "Enter Sandman"]}) as fake:
        lookup = TrackLookup(aredis, SpotifyConfig("id", "secret", fake.api_url, fake.accounts_url))
        core = RecommenderCore(recommender, 1, music.artists, aredis, lookup)
        metallica = next(a for a, n in core.names.items() if n == "Metallica")
        item = await core._item(core.inner_item(str(metallica)), 1.0, 1.0, 1.0, "happy", "match")
        assert [t.name for t in item.tracks] == ["One", "Enter Sandman"]
        assert item.spotify_url.startswith("https://open.spotify.com/artist/")
        await aredis.delete("emotune:tracks:metallica")
