"""The recommender's parts on the real data, trained once for the session."""

from __future__ import annotations

import uuid

import pytest

from emotune_common.keys import user_key_pattern
from emotune_recommender import store
from emotune_recommender.catalogue import Catalogue, load_catalogue
from emotune_recommender.core import RecommenderCore
from emotune_recommender.data import MusicData, load_music
from emotune_recommender.taste import TasteModel
from emotune_recommender.tracks import SpotifyConfig, TrackLookup
from emotune_recommender.trackspace import TrackSpace

from ..conftest import DATA_DIR


@pytest.fixture(scope="session")
def lastfm() -> MusicData:
    return load_music(DATA_DIR)


@pytest.fixture(scope="session")
def taste(recommender_models) -> TasteModel:
    """The model ``python -m emotune_recommender train`` saved (all the Last.fm plays)."""
    return store.load_latest(recommender_models)[1]


@pytest.fixture(scope="session")
def catalogue(lastfm) -> Catalogue:
    return load_catalogue(lastfm, DATA_DIR)


@pytest.fixture(scope="session")
def space(catalogue, taste, lastfm) -> TrackSpace:
    return TrackSpace.build(catalogue, taste, lastfm.artists)


@pytest.fixture
def core(taste, space, lastfm, aredis) -> RecommenderCore:
    return RecommenderCore(
        taste, space, 1, aredis, TrackLookup(aredis, SpotifyConfig()), lastfm.artists["name"].to_dict()
    )


@pytest.fixture
async def user(aredis):
    """A user id of this test's own; every key of theirs is deleted afterwards."""
    uid = f"test-{uuid.uuid4().hex}"
    yield uid
    keys = [k async for k in aredis.scan_iter(user_key_pattern(uid))]
    if keys:
        await aredis.delete(*keys)
