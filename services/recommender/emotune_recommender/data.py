"""The music data: Last.fm listening counts joined to Spotify artist features by normalised name.

Files (in ``<data dir>/music``, see its README): user_artists.dat.gz (userID, artistID, weight =
plays), artists.dat.gz (id, name, ...), user_friends.dat.gz (pairs, no header),
spotify_artists.csv.gz (artist-level means of Spotify audio features, and genres).
"""

from __future__ import annotations

import ast
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotune_common.settings import default_data_dir

DEFAULT_DATA_DIR = default_data_dir()
AUDIO_FEATURES = ("valence", "energy", "danceability", "tempo", "acousticness")


class DataError(ValueError):
    """A music file is missing or malformed; the text says which and why."""


def normalise_name(name: str) -> str:
    """How Last.fm and Spotify names are matched: lower case, accents folded (Beyoncé = Beyonce),
    letters and digits of any script only."""
    decomposed = unicodedata.normalize("NFKD", str(name).lower())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def parse_genres(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text) if isinstance(text, str) and text.startswith("[") else []
    except (ValueError, SyntaxError):
        return []
    return [str(g) for g in value] if isinstance(value, list) else []


def read_table(path: Path, **kwargs) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path} does not exist (set EMOTUNE_DATA_DIR or run `make data`)")
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as e:
        raise DataError(f"{path}: {e}") from e


def _require(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (has {list(frame.columns)})")


@dataclass
class MusicData:
    plays: pd.DataFrame  # user_id, artist_id, plays
    artists: pd.DataFrame  # index artist_id: name, key, spotify features (NaN when unmatched), genres (list)
    friends: pd.DataFrame  # user_id, friend_id
    spotify_genres: pd.Series  # normalised artist name -> Spotify genres (list), every Spotify artist

    def coverage(self) -> dict[str, float]:
        """How much of Last.fm the Spotify join covers: artists, listening rows and plays."""
        matched = self.artists["matched"]
        rows = self.plays["artist_id"].map(matched).fillna(False).astype(bool)
        return {
            "artists": int(matched.sum()),
            "artists_total": len(self.artists),
            "rows_share": float(rows.mean()),
            "plays_share": float(self.plays.loc[rows, "plays"].sum() / self.plays["plays"].sum()),
        }


def load_music(data_dir: Path = DEFAULT_DATA_DIR) -> MusicData:
    folder = Path(data_dir) / "music"
    plays_path, artists_path = folder / "user_artists.dat.gz", folder / "artists.dat.gz"
    friends_path, spotify_path = folder / "user_friends.dat.gz", folder / "spotify_artists.csv.gz"

    plays = read_table(plays_path, sep="\t")
    _require(plays, plays_path, ["userID", "artistID", "weight"])
    plays = plays.rename(columns={"userID": "user_id", "artistID": "artist_id", "weight": "plays"})
    plays = plays[plays["plays"] > 0][["user_id", "artist_id", "plays"]]

    artists = read_table(artists_path, sep="\t", quoting=3)
    _require(artists, artists_path, ["id", "name"])
    artists = artists.rename(columns={"id": "artist_id"})[["artist_id", "name"]]
    artists["key"] = artists["name"].map(normalise_name)

    spotify = read_table(spotify_path)
    _require(spotify, spotify_path, ["artists", "genres", "popularity", *AUDIO_FEATURES])
    spotify["key"] = spotify["artists"].map(normalise_name)
    spotify = spotify[spotify["key"] != ""].drop_duplicates("key", keep="first")
    spotify["genres"] = spotify["genres"].map(parse_genres)
    columns = ["key", "genres", "popularity", *AUDIO_FEATURES]
    artists = artists.merge(spotify[columns], on="key", how="left").set_index("artist_id")
    artists["matched"] = artists["valence"].notna()
    artists["genres"] = artists["genres"].map(lambda g: g if isinstance(g, list) else [])

    friends = read_table(friends_path, sep=r"\s+", header=None, names=["user_id", "friend_id"], engine="python")
    if not friends.empty and not str(friends.iloc[0, 0]).isdigit():  # a header row, where the file has one
        friends = friends.iloc[1:]
    friends = friends.astype({"user_id": np.int64, "friend_id": np.int64})
    genres = spotify.set_index("key")["genres"]
    return MusicData(plays.reset_index(drop=True), artists, friends.reset_index(drop=True), genres)


def confidence(plays: pd.Series) -> pd.Series:
    """Play counts as confidence weights: log-scaled, since a 10,000-play artist is not 1,000 times
    more liked than a 10-play one (Hu, Koren and Volinsky's implicit-feedback confidence)."""
    return np.log1p(plays.astype(float))


def split_per_user(plays: pd.DataFrame, test_share: float = 0.2, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``test_share`` of each user's artists (at least one for users with two or more)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(plays))
    shuffled = plays.iloc[order]
    rank = shuffled.groupby("user_id").cumcount()
    size = shuffled.groupby("user_id")["artist_id"].transform("size")
    held = np.where(size >= 2, np.maximum(1, np.floor(size * test_share)), 0)
    is_test = rank < held
    return shuffled[~is_test].sort_index(), shuffled[is_test].sort_index()
