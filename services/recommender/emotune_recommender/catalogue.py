"""The track catalogue: real Spotify tracks, cleaned, joined to the Last.fm artists, tagged by mood.

Built at start-up from ``<data dir>/music`` (see its README): ``spotify_tracks_5k.csv.gz`` and
``spotify_tracks_features_subset.csv.gz`` give the tracks and their audio features;
``spotify_artists.csv.gz`` gives the genres of artists whose tracks carry none. Every track gets
its place on the valence-arousal plane from its *own* valence and energy, and a mood tag.

Cleaning: a row without a valid 22-character Spotify id, a title, an artist, or a valence and an
energy in 0..1 is bad and counted by reason, never raised. Rows with the same id are merged (genres
united), then rows with the same title and artist (names normalised) keep the most popular id.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emotune_common.spotify_links import artist_url, search_url
from emotune_recommender.data import DataError, MusicData, normalise_name, read_table
from emotune_recommender.mood import track_points

TRACK_ID = re.compile(r"^[0-9A-Za-z]{22}$")
#: (valence >= 0.5, energy >= 0.5) -> mood tag
MOOD_TAGS = {(True, True): "happy/energetic", (True, False): "calm/content", (False, False): "sad/melancholic",
             (False, True): "tense/angry"}  # fmt: skip
UNIT_FEATURES = ("valence", "energy", "danceability", "acousticness")
COLUMNS = ["title", "artist", "spotify_artist_id", "genres", "popularity", *UNIT_FEATURES, "tempo", "duration_ms"]

#: each file: its columns renamed to the catalogue's, and how its genres are written
SOURCES = {
    "spotify_tracks_5k.csv.gz": {"rename": {"artist_id": "spotify_artist_id"}, "genres": "semicolons"},
    "spotify_tracks_features_subset.csv.gz": {
        "rename": {"track_name": "title", "artist_name": "artist", "genre": "genres"},
        "genres": "one",
    },
}


def mood_tag(valence: float, energy: float) -> str:
    return MOOD_TAGS[(valence >= 0.5, energy >= 0.5)]


def artist_link(track: pd.Series) -> str:
    """The artist's Spotify page where the catalogue knows its id, else a Spotify search for its name."""
    if isinstance(track.get("spotify_artist_id"), str) and TRACK_ID.fullmatch(track["spotify_artist_id"]):
        return artist_url(track["spotify_artist_id"])
    return search_url(track["artist"])


def _genres(text: object, style: str) -> list[str]:
    if not isinstance(text, str) or not text.strip() or text.strip().lower() == "unknown":
        return []
    if style == "one":
        return [text.strip().lower()]
    return [g.strip() for g in text.split(";") if g.strip() and g.strip().lower() != "unknown"]


@dataclass
class CatalogueReport:
    """What start-up made of the files: rows read, bad rows by reason, duplicates merged."""

    rows: dict[str, int] = field(default_factory=dict)
    bad: Counter = field(default_factory=Counter)
    duplicate_ids: int = 0
    duplicate_titles: int = 0
    tracks: int = 0
    artists: int = 0
    lastfm_artists: int = 0
    missing_files: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"rows": sum(self.rows.values()), "tracks": self.tracks, "artists": self.artists,
                "joined_to_lastfm": self.lastfm_artists, "bad_rows": sum(self.bad.values()),
                "bad_by_reason": dict(self.bad), "duplicate_ids_merged": self.duplicate_ids,
                "duplicate_titles_merged": self.duplicate_titles, "missing_files": self.missing_files}  # fmt: skip


def clean(frame: pd.DataFrame, report: CatalogueReport) -> pd.DataFrame:
    """The rows fit to serve, with numbers as numbers; the others counted in ``report.bad``."""
    frame = frame.copy()
    for column in (*UNIT_FEATURES, "tempo", "popularity", "duration_ms"):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    reasons = {
        "track id": ~frame["track_id"].astype(str).str.fullmatch(TRACK_ID.pattern),
        "title": frame["title"].fillna("").astype(str).str.strip() == "",
        "artist": frame["artist"].fillna("").astype(str).str.strip() == "",
        "valence or energy": ~(frame["valence"].between(0, 1) & frame["energy"].between(0, 1)),
    }
    bad = pd.Series(False, index=frame.index)
    for reason, rows in reasons.items():  # each bad row counted once, under its first reason
        report.bad[reason] += int((rows & ~bad).sum())
        bad |= rows
    frame = frame[~bad].copy()
    for column in ("danceability", "acousticness"):  # optional: out of range means unknown
        frame.loc[~frame[column].between(0, 1), column] = np.nan
    frame.loc[~frame["tempo"].between(1, 400), "tempo"] = np.nan
    frame["popularity"] = frame["popularity"].where(frame["popularity"].between(0, 100), 0).fillna(0)
    frame["duration_ms"] = frame["duration_ms"].where(frame["duration_ms"] > 0, 0).fillna(0)
    frame["title"] = frame["title"].astype(str).str.strip()
    frame["artist"] = frame["artist"].astype(str).str.strip()
    return frame


def _merge(frame: pd.DataFrame, report: CatalogueReport) -> pd.DataFrame:
    frame = frame.sort_values("popularity", ascending=False, kind="stable")
    genres = frame.groupby("track_id")["genres"].agg(lambda gs: list(dict.fromkeys(g for gl in gs for g in gl)))
    before = len(frame)
    frame = frame.drop_duplicates("track_id", keep="first").set_index("track_id")
    frame["genres"] = genres.loc[frame.index]
    report.duplicate_ids = before - len(frame)
    frame["artist_key"] = frame["artist"].map(normalise_name)
    same = frame["title"].map(normalise_name) + "\t" + frame["artist_key"]
    report.duplicate_titles = int(same.duplicated().sum())
    return frame[~same.duplicated(keep="first")]


@dataclass
class Catalogue:
    """Tracks (index: track id) with: title, artist, artist_key (normalised name), artist_id (the
    Last.fm id as text where the artist is in the listening data, else ``x:<artist_key>``),
    lastfm_id (-1 where not), genres, popularity, the audio features, duration_ms, mood_tag,
    valence_arousal (the point, -1..1 each axis)."""

    tracks: pd.DataFrame
    report: CatalogueReport

    @property
    def points(self) -> np.ndarray:
        return track_points(self.tracks["valence"].to_numpy(), self.tracks["energy"].to_numpy())

    def position(self, track_id: str) -> int | None:
        """Row of a track id, or None for an id the catalogue lacks."""
        try:
            return int(self.tracks.index.get_loc(track_id))
        except KeyError:
            return None

    def artists(self) -> pd.DataFrame:
        """One row per artist id: name, genres (of all its tracks), tracks (how many)."""
        grouped = self.tracks.groupby("artist_id", sort=False)
        return pd.DataFrame({
            "name": grouped["artist"].first(),
            "genres": grouped["genres"].agg(lambda gs: list(dict.fromkeys(g for gl in gs for g in gl))),
            "tracks": grouped.size(),
            "popularity": grouped["popularity"].max(),
        })  # fmt: skip

    def genre_counts(self) -> pd.Series:
        return self.tracks["genres"].explode().dropna().value_counts()


def load_catalogue(music: MusicData, data_dir: Path) -> Catalogue:
    """Read, clean, merge and tag the track files; join artists to Last.fm and genres to Spotify's."""
    folder = Path(data_dir) / "music"
    report, frames = CatalogueReport(), []
    for name, source in SOURCES.items():
        path = folder / name
        if not path.exists():
            report.missing_files.append(name)
            continue
        raw = read_table(path).rename(columns=source["rename"])
        missing = [c for c in ("track_id", "title", "artist", "valence", "energy") if c not in raw.columns]
        if missing:
            raise DataError(f"{path}: missing columns {missing} (has {list(raw.columns)})")
        report.rows[name] = len(raw)
        for column in COLUMNS:
            if column not in raw.columns:
                raw[column] = np.nan
        raw["genres"] = raw["genres"].map(lambda g, s=source["genres"]: _genres(g, s))
        frames.append(clean(raw[["track_id", *COLUMNS]], report))
    if not frames:
        raise DataError(f"{folder}: no track catalogue ({', '.join(SOURCES)}); run `make data`")
    tracks = _merge(pd.concat(frames, ignore_index=True), report)

    lastfm = music.artists.reset_index().drop_duplicates("key").set_index("key")
    joined = tracks["artist_key"].map(lastfm["artist_id"])
    tracks["lastfm_id"] = joined.fillna(-1).astype(np.int64)
    known = tracks["lastfm_id"] >= 0
    tracks["artist_id"] = np.where(known, tracks["lastfm_id"].astype(str), "x:" + tracks["artist_key"])
    artist_genres = tracks["artist_key"].map(music.spotify_genres)  # Spotify's genres of the artist
    tracks["genres"] = [list(dict.fromkeys([*own, *(artist if isinstance(artist, list) else [])]))
                        for own, artist in zip(tracks["genres"], artist_genres, strict=True)]  # fmt: skip
    tracks["mood_tag"] = [mood_tag(v, e) for v, e in zip(tracks["valence"], tracks["energy"], strict=True)]
    report.tracks, report.artists = len(tracks), tracks["artist_id"].nunique()
    report.lastfm_artists = int(tracks.loc[tracks["lastfm_id"] >= 0, "lastfm_id"].nunique())
    return Catalogue(tracks, report)
