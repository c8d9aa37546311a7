"""The music data on the real files: the join, its coverage, confidence weights, the split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from emotune_recommender.data import DataError, confidence, load_music, normalise_name, split_per_user

from ..conftest import DATA_DIR


@pytest.fixture(scope="module")
def music():
    return load_music(DATA_DIR)


def test_names_match_across_spelling():
    assert normalise_name("Beyoncé") == normalise_name("beyonce") == "beyonce"
    assert normalise_name("AC/DC") == normalise_name("ac dc") == "acdc"
    assert normalise_name("Sigur Rós") == "sigurros"
    assert normalise_name("東方神起") == "東方神起"  # other scripts keep their letters


def test_loads_the_last_fm_and_spotify_files(music):
    assert len(music.plays) == 92_834
    assert music.plays["user_id"].nunique() == 1_892
    assert len(music.artists) == 17_632
    assert len(music.friends) == 25_434
    matched = music.artists[music.artists["matched"]]
    assert matched["valence"].between(0, 1).all() and matched["energy"].between(0, 1).all()
    assert matched["genres"].map(len).gt(0).mean() > 0.6


def test_the_join_covers_most_of_the_listening(music):
    coverage = music.coverage()
    # the data's README: 76% of plays on 68% of rows (its matching differs in detail)
    assert coverage["artists"] > 4_500
    assert 0.64 < coverage["rows_share"] < 0.70
    assert 0.72 < coverage["plays_share"] < 0.78


def test_confidence_is_log_scaled(music):
    weights = confidence(music.plays["plays"])
    assert weights.min() > 0
    assert weights.max() / weights.min() < 25  # plays span five orders of magnitude, weights far less
    assert np.isclose(confidence(music.plays["plays"].iloc[:1]).iloc[0], np.log1p(music.plays["plays"].iloc[0]))


def test_the_split_holds_out_a_fifth_of_each_users_artists_reproducibly(music):
    train, test = split_per_user(music.plays, seed=7)
    again_train, again_test = split_per_user(music.plays, seed=7)
    assert train.equals(again_train) and test.equals(again_test)
    assert len(train) + len(test) == len(music.plays)
    assert not set(map(tuple, train[["user_id", "artist_id"]].values)) & set(
        map(tuple, test[["user_id", "artist_id"]].values)
    )
    share = test.groupby("user_id").size() / music.plays.groupby("user_id").size()
    assert share.dropna().between(0.05, 0.5).all()
    assert 0.19 < len(test) / len(music.plays) < 0.21


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_music(tmp_path)
    music = tmp_path / "music"
    music.mkdir()
    for name in ("artists.dat.gz", "user_friends.dat.gz", "spotify_artists.csv.gz"):
        (music / name).write_bytes((DATA_DIR / "music" / name).read_bytes())
    with gzip.open(music / "user_artists.dat.gz", "wt") as f:
        f.write("user\tartist\n1\t2\n")
    with pytest.raises(DataError, match="missing columns"):
        load_music(tmp_path)
