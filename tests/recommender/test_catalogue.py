"""The track catalogue built from the real files: cleaning, merging, the Last.fm join, mood tags."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from emotune_recommender.catalogue import MOOD_TAGS, SOURCES, load_catalogue, mood_tag
from emotune_recommender.data import DataError

from ..conftest import DATA_DIR


def test_every_distinct_real_track_once_with_its_own_mood(catalogue):
    tracks, report = catalogue.tracks, catalogue.report
    # the data README: 15,632 distinct track ids in the two files
    assert report.rows == {"spotify_tracks_5k.csv.gz": 5_009, "spotify_tracks_features_subset.csv.gz": 10_757}
    assert report.tracks + report.duplicate_titles == 15_632 and report.duplicate_ids == 15_766 - 15_632
    assert tracks.index.is_unique and tracks.index.str.fullmatch(r"[0-9A-Za-z]{22}").all()
    assert not (tracks["title"].str.lower() + "\t" + tracks["artist_key"]).duplicated().any()
    for column in ("valence", "energy"):
        assert tracks[column].between(0, 1).all()
    assert (
        tracks["mood_tag"] == [mood_tag(v, e) for v, e in zip(tracks["valence"], tracks["energy"], strict=True)]
    ).all()
    assert set(tracks["mood_tag"]) == set(MOOD_TAGS.values())
    points = catalogue.points
    assert np.allclose(points, np.stack([2 * tracks["valence"] - 1, 2 * tracks["energy"] - 1], axis=1))


def test_tracks_join_the_lastfm_artists_and_carry_genres(catalogue, lastfm):
    tracks = catalogue.tracks
    joined = tracks[tracks["lastfm_id"] >= 0]
    # the data README: 1,431 artists of either catalogue match a Last.fm artist (before duplicates merge)
    assert 1_350 <= catalogue.report.lastfm_artists <= 1_431
    names = lastfm.artists["key"]
    assert (joined["artist_key"] == names.loc[joined["lastfm_id"]].to_numpy()).all()
    assert (joined["artist_id"] == joined["lastfm_id"].astype(str)).all()
    assert tracks.loc[tracks["lastfm_id"] < 0, "artist_id"].str.startswith("x:").all()
    assert (tracks["genres"].map(len) > 0).mean() > 0.9
    metallica = tracks[tracks["artist"] == "Metallica"]
    assert len(metallica) and any("metal" in g for gs in metallica["genres"] for g in gs)


def _copy_music(tmp_path):
    music = tmp_path / "music"
    shutil.copytree(DATA_DIR / "music", music)
    return music


def test_bad_rows_are_counted_by_reason_and_the_rest_is_served(tmp_path, lastfm):
    music = _copy_music(tmp_path)
    path = music / "spotify_tracks_5k.csv.gz"
    frame = pd.read_csv(path)
    good = frame.iloc[0]
    bad = pd.DataFrame([
        {**good, "track_id": "not-an-id"},
        {**good, "track_id": "A" * 22, "valence": "loud"},
        {**good, "track_id": "B" * 22, "energy": 7},
        {**good, "track_id": "C" * 22, "title": ""},
        {**good, "track_id": "D" * 22, "artist": None},
        {**good, "track_id": "E" * 22, "title": "Odd one", "danceability": -3, "tempo": 0, "popularity": 900},
    ])  # fmt: skip
    pd.concat([frame, bad]).to_csv(path, index=False, compression="gzip")
    catalogue = load_catalogue(lastfm, tmp_path)
    assert dict(catalogue.report.bad) == {"track id": 1, "valence or energy": 2, "title": 1, "artist": 1}
    odd = catalogue.tracks.loc["E" * 22]  # kept: what is unknown is unknown, not wrong
    assert np.isnan(odd["danceability"]) and np.isnan(odd["tempo"]) and odd["popularity"] == 0
    assert catalogue.report.summary()["bad_rows"] == 5


def test_a_missing_file_is_reported_and_no_file_at_all_is_a_clear_error(tmp_path, lastfm):
    music = _copy_music(tmp_path)
    (music / "spotify_tracks_features_subset.csv.gz").unlink()
    catalogue = load_catalogue(lastfm, tmp_path)
    assert catalogue.report.missing_files == ["spotify_tracks_features_subset.csv.gz"]
    assert len(catalogue.tracks) > 4_900
    for name in SOURCES:
        (music / name).unlink(missing_ok=True)
    with pytest.raises(DataError, match="make data"):
        load_catalogue(lastfm, tmp_path)
    with gzip.open(music / "spotify_tracks_5k.csv.gz", "wt") as f:
        f.write("title,artist\nx,y\n")
    with pytest.raises(DataError, match="missing columns"):
        load_catalogue(lastfm, tmp_path)
