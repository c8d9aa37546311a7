"""Offline evaluation of the recommender (``make eval-recommender``): REPORT.md and its plots.

On a per-user split of the Last.fm plays (a fifth of each user's artists held out, seed 42), at
artist level since the listening data is per artist: precision@10, recall@10, NDCG@10 and catalogue
coverage of the service's ranker (the fitted blend) against popularity, item-kNN, user-kNN, EASE^R
and LightFM alone; mood fit at track level against artist level at equal taste cost; and how fast
a new listener's list becomes theirs after 1, 3 and 5 likes.

A split from outside: ``python -m emotune_recommender.evaluate --train FILE --test FILE --json OUT``
(files in the format of user_artists.dat: a header ``userID artistID weight``) trains every model
on the train file, scores the test file and writes the figures as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import typer
from tqdm import tqdm

from emotune_common.labels import EMOTIONS
from emotune_recommender.catalogue import load_catalogue
from emotune_recommender.core import LIKE_WEIGHT
from emotune_recommender.data import DEFAULT_DATA_DIR, DataError, MusicData, load_music, read_table, split_per_user
from emotune_recommender.mood import distance, targets, track_points
from emotune_recommender.ranking import TrackIndex
from emotune_recommender.taste import MODELS, TasteModel, blend
from emotune_recommender.trackspace import TrackSpace

HERE = Path(__file__).resolve().parents[1]
K = 10
SERVICE = "emotune (blend)"
MOOD_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
LIKES = (0, 1, 3, 5)
app = typer.Typer(add_completion=False)


@dataclass
class Scores:
    precision: float
    recall: float
    ndcg: float
    coverage: float

    def json(self) -> dict[str, float]:
        return {"precision@10": self.precision, "recall@10": self.recall, "ndcg@10": self.ndcg,
                "coverage": self.coverage}  # fmt: skip


def read_plays(path: Path) -> pd.DataFrame:
    """A file like user_artists.dat (tab- or comma-separated, header ``userID artistID weight``)."""
    frame = read_table(Path(path), sep=None, engine="python")
    missing = [c for c in ("userID", "artistID", "weight") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (has {list(frame.columns)})")
    frame = frame.rename(columns={"userID": "user_id", "artistID": "artist_id", "weight": "plays"})
    frame = frame[["user_id", "artist_id", "plays"]].apply(pd.to_numeric, errors="coerce").dropna()
    return frame[frame["plays"] > 0].astype({"user_id": np.int64, "artist_id": np.int64})


def top_k(scores: np.ndarray, seen: sp.csr_matrix, k: int = K) -> np.ndarray:
    """[rows, k] the best k columns of each row, best first, each row's ``seen`` columns left out."""
    scores = np.array(scores, np.float64)
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def list_metrics(top: np.ndarray, held: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: precision@k, recall@k, NDCG@k of ranked lists against held-out columns."""
    gains = 1 / np.log2(np.arange(2, top.shape[1] + 2))
    precision, recall, ndcg = [], [], []
    for row, truth in zip(top, (held[i].indices for i in range(held.shape[0])), strict=True):
        hits = np.isin(row, truth)
        precision.append(hits.mean())
        recall.append(hits.sum() / len(truth))
        ndcg.append((hits * gains).sum() / gains[: min(len(truth), len(row))].sum())
    return np.array(precision), np.array(recall), np.array(ndcg)


def score_models(taste: TasteModel, test: sp.csr_matrix, batch: int = 256) -> dict[str, Scores]:
    """Every model of the blend, and the blend, on the held-out artists of every test user."""
    train = taste.matrix
    users = np.flatnonzero(np.diff(test.indptr))
    names = (SERVICE, *MODELS)
    sums = {n: np.zeros(3) for n in names}
    covered: dict[str, set[int]] = {n: set() for n in names}
    for start in tqdm(range(0, len(users), batch), desc="scoring", unit="batch"):
        chunk = users[start : start + batch]
        parts = taste.components.scores(train[chunk], chunk, known_rows=True)
        parts[SERVICE] = blend(parts, taste.weights)
        for name in names:
            top = top_k(parts[name], train[chunk])
            covered[name].update(top.ravel().tolist())
            sums[name] += [m.sum() for m in list_metrics(top, test[chunk])]
    return {n: Scores(*(sums[n] / len(users)), len(covered[n]) / train.shape[1]) for n in names}


def new_listener_curve(taste: TasteModel, test: sp.csr_matrix, users: int = 400, seed: int = 0) -> pd.DataFrame:
    """Precision@10 of a listener known only by their n most played artists (n = 0: popularity),
    and how much of the list their whole history gives it shares."""
    rng = np.random.default_rng(seed)
    train = taste.matrix
    candidates = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) >= max(LIKES)))
    chosen = rng.choice(candidates, min(users, len(candidates)), replace=False)
    full = top_k(taste.artist_scores(train[chosen], chosen, known_rows=True), train[chosen])
    rows = []
    for likes in LIKES:
        folded = sp.lil_matrix(train[chosen].shape, dtype=np.float32)
        for i, user in enumerate(chosen):
            row = train[user]
            for artist in row.indices[np.argsort(-row.data)][:likes]:
                folded[i, artist] = LIKE_WEIGHT
        folded = folded.tocsr()
        if likes:
            scores = taste.artist_scores(folded, np.full(len(chosen), -1))
        else:
            scores = taste.components.scores(folded, np.full(len(chosen), -1), models=("popularity",))["popularity"]
        top = top_k(scores, train[chosen])
        precision, _, ndcg = list_metrics(top, test[chosen])
        overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(top, full, strict=True)])
        rows.append({"likes": likes, "precision@10": precision.mean(), "ndcg@10": ndcg.mean(), "overlap": overlap})
    rows.append({"likes": "all", "precision@10": list_metrics(full, test[chosen])[0].mean(),
                 "ndcg@10": list_metrics(full, test[chosen])[2].mean(), "overlap": 1.0})  # fmt: skip
    return pd.DataFrame(rows)


def mood_fit_table(taste: TasteModel, space: TrackSpace, music: MusicData, test: sp.csr_matrix, users: int = 300,
                   seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """For each mood weight and policy, two lists per user in a random mood: tracks placed by their
    own valence and energy (the service), and artists placed by their mean (before). Precision@10 is
    at artist level for both (a track hits when its artist was held out); distance is of each
    item's own point to its position's target."""
    artists = music.artists.loc[taste.lightfm.inputs.item_ids]
    matched = np.flatnonzero(artists["matched"].to_numpy())
    points = track_points(artists["valence"].to_numpy()[matched], artists["energy"].to_numpy()[matched])
    artist_index = TrackIndex(np.arange(len(matched)), points, np.full(len(matched), 100.0), len(matched))
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(np.diff(test.indptr))
    chosen = rng.choice(candidates, min(users, len(candidates)), replace=False)
    moods = rng.integers(len(EMOTIONS), size=users)
    rows = []
    for i, user in enumerate(tqdm(chosen, desc="mood fit", unit="user")):
        row = taste.matrix[user]
        track_taste = space.artist_taste(taste, row, int(user))
        track_taste[row.indices] = 0.0  # artists already played are not news (the axis starts with Last.fm's)
        held = set(test[user].indices.tolist())
        played = np.zeros(len(matched), bool)
        played[np.isin(matched, row.indices)] = True
        artist_taste = track_taste[: space.lastfm_artists][matched]
        artist_taste = np.where(played, 0.0, artist_taste)  # artists already played are not news
        emotion = EMOTIONS[moods[i]]
        for policy in ("match", "uplift"):
            goal = targets(emotion, policy, K)
            for weight in MOOD_WEIGHTS:
                picks = space.index.rank(track_taste, goal, weight, K)
                hits = [p.artist in held for p in picks]
                d = distance(space.index.points[[p.track for p in picks]], goal[: len(picks)])
                rows.append({"level": "track", "policy": policy, "mood_weight": weight, "hits": np.mean(hits),
                             "distance": d.mean()})  # fmt: skip
                picks = artist_index.rank(artist_taste, goal, weight, K)
                hits = [matched[p.track] in held for p in picks]
                d = distance(artist_index.points[[p.track for p in picks]], goal[: len(picks)])
                rows.append({"level": "artist", "policy": policy, "mood_weight": weight, "hits": np.mean(hits),
                             "distance": d.mean()})  # fmt: skip
    table = pd.DataFrame(rows).groupby(["level", "policy", "mood_weight"], as_index=False).mean()
    base = table[table["mood_weight"] == 0].set_index(["level", "policy"])["hits"]
    table["taste_cost"] = 1 - table["hits"] / table.apply(lambda r: base[(r["level"], r["policy"])], axis=1)
    return table.rename(columns={"hits": "precision@10"})


def plot(scores: dict[str, Scores], mood: pd.DataFrame, curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.6))
    names = list(scores)
    x = np.arange(len(names))
    for i, (metric, label) in enumerate((("precision", "precision@10"), ("recall", "recall@10"), ("ndcg", "NDCG@10"),
                                          ("coverage", "catalogue coverage"))):  # fmt: skip
        left.bar(x + (i - 1.5) * 0.2, [getattr(scores[n], metric) for n in names], 0.2, label=label)
    left.set_xticks(x, [n.replace(" (", "\n(") for n in names], fontsize=8)
    left.set_title("held-out artists, Last.fm split")
    left.legend(fontsize=8)
    for (level, policy), group in mood.groupby(["level", "policy"]):
        middle.plot(100 * group["taste_cost"], group["distance"], marker="o" if level == "track" else "s",
                    linestyle="-" if level == "track" else "--", label=f"{level} level, {policy}")  # fmt: skip
        for _, r in group.iterrows():
            middle.annotate(f"w={r['mood_weight']:g}", (100 * r["taste_cost"], r["distance"]), fontsize=6)
    middle.set_xlabel("taste cost: precision@10 lost against mood weight 0 (%)")
    middle.set_ylabel("mean distance of the list to its mood targets")
    middle.set_title("mood fit: tracks by their own features vs artists by their mean")
    middle.legend(fontsize=8)
    steps = curve[curve["likes"] != "all"]
    right.plot(steps["likes"].astype(int), steps["precision@10"], marker="o", label="precision@10")
    right.plot(steps["likes"].astype(int), steps["overlap"], marker="s", label="share of the full-history list")
    full = float(curve.loc[curve["likes"] == "all", "precision@10"].iloc[0])
    right.axhline(full, color="grey", linestyle=":", label=f"precision@10 with the whole history ({full:.3f})")
    right.set_xticks(list(LIKES))
    right.set_xlabel("likes of a new listener")
    right.set_title("a new listener's list becoming theirs")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mood_sentence(mood: pd.DataFrame, policy: str) -> str:
    at = mood[mood["mood_weight"] == 0.2].set_index(["level", "policy"])
    zero = mood[mood["mood_weight"] == 0].set_index(["level", "policy"])
    closer = {level: zero.loc[(level, policy), "distance"] - at.loc[(level, policy), "distance"]
              for level in ("track", "artist")}  # fmt: skip
    return (f"At the default weight 0.2, `{policy}` brings tracks {closer['track']:.3f} closer to the mood "
            f"({at.loc[('track', policy), 'distance']:.3f}) at a taste cost of "
            f"{at.loc[('track', policy), 'taste_cost']:.1%}; artists by their mean come {closer['artist']:.3f} "
            f"closer ({at.loc[('artist', policy), 'distance']:.3f}) "
            f"at {at.loc[('artist', policy), 'taste_cost']:.1%}.")  # fmt: skip


def report(music: MusicData, taste: TasteModel, scores: dict[str, Scores], mood: pd.DataFrame,
           curve: pd.DataFrame, catalogue_summary: dict) -> str:  # fmt: skip
    best = max((n for n in scores if n not in (SERVICE,)), key=lambda n: scores[n].precision)
    ratio = scores[SERVICE].precision / scores[best].precision
    lines = [
        "# Recommender: offline evaluation",
        "",
        "Written by `make eval-recommender`. Last.fm plays of 1,892 users, a fifth of each user's artists held out "
        "(seed 42); scores exclude each user's training artists. Artist level: the listening data is per artist.",
        "",
        f"Catalogue: {catalogue_summary['tracks']:,} tracks of {catalogue_summary['artists']:,} artists "
        f"({catalogue_summary['joined_to_lastfm']:,} of them Last.fm artists), "
        f"{catalogue_summary['bad_rows']} bad rows, {catalogue_summary['duplicate_ids_merged']} duplicate ids and "
        f"{catalogue_summary['duplicate_titles_merged']} duplicate titles merged.",
        "",
        "| model | precision@10 | recall@10 | NDCG@10 | catalogue coverage |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {s.precision:.4f} | {s.recall:.4f} | {s.ndcg:.4f} | {s.coverage:.1%} |" for n, s in scores.items()],
        "",
        f"The service's ranker: precision@10 {ratio:.3f}x the best baseline's ({best}; floor 1.0x, aim 1.05x).",
        "",
        "Blend weights, fitted on a validation split of the training plays (NDCG@10 by coordinate ascent): "
        + ", ".join(f"{n} {w:g}" for n, w in taste.weights.items())
        + f"; EASE l2 {taste.ease_l2:g}. Validation NDCG@10: "
        + ", ".join(f"{n} {v:.4f}" for n, v in taste.validation.items())
        + ".",
        "",
        "## Mood fit: tracks by their own features against artists by their mean",
        "",
        "300 users, a random mood each. Precision@10 at artist level for both; distance on the valence-arousal "
        "plane (-1..1 each axis) from each item's own point to its position's target.",
        "",
        "| level | policy | mood weight | precision@10 | taste cost | mean distance |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {r.level} | {r.policy} | {r.mood_weight:g} | {r['precision@10']:.4f} | {r.taste_cost:.1%} "
            f"| {r.distance:.3f} |"
            for _, r in mood.iterrows()
        ],
        "",
        *[_mood_sentence(mood, p) for p in ("match", "uplift")],
        "",
        "## A new listener",
        "",
        "400 users taken as new: known only by their n most played artists, liked (0 likes: popularity).",
        "",
        "| likes | precision@10 | NDCG@10 | share of the full-history list |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {r.likes} | {r['precision@10']:.4f} | {r['ndcg@10']:.4f} | {r.overlap:.0%} |"
            for _, r in curve.iterrows()
        ],
        "",
        "![evaluation](evaluation.png)",
        "",
    ]
    return "\n".join(lines)


def split_from_files(
    music: MusicData, train_path: Path, test_path: Path
) -> tuple[MusicData, pd.DataFrame, pd.DataFrame]:
    """The outside split, over the artists the data knows (rows of other artists are dropped and counted)."""
    train, test = read_plays(train_path), read_plays(test_path)
    known = set(music.artists.index)
    dropped = (~train["artist_id"].isin(known)).sum() + (~test["artist_id"].isin(known)).sum()
    if dropped:
        typer.echo(f"{dropped} rows name artists not in artists.dat: left out", err=True)
    train, test = train[train["artist_id"].isin(known)], test[test["artist_id"].isin(known)]
    if train.empty or test.empty:
        raise DataError("the train and test files need rows of known artists")
    return replace(music, plays=pd.concat([train, test], ignore_index=True)), train, test


@app.command()
def main(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="Folder holding music/"),
         out: Path = typer.Option(HERE, help="Folder for REPORT.md and its plot"),
         train: Path | None = typer.Option(None, help="A split from outside: training plays (user_artists format)"),
         test: Path | None = typer.Option(None, help="... and the plays to score"),
         json_out: Path | None = typer.Option(None, "--json", help="Write the figures here")) -> None:  # fmt: skip
    """Evaluate every recommender on one split; with --train/--test on that split, else on the Last.fm split."""
    try:
        music = load_music(data_dir)
        if (train is None) != (test is None):
            raise typer.BadParameter("--train and --test go together")
        if train is not None:
            music, train_plays, test_plays = split_from_files(music, train, test)
        else:
            train_plays, test_plays = split_per_user(music.plays)
    except DataError as e:
        raise typer.BadParameter(str(e)) from None
    taste = TasteModel.train(music, train_plays, progress=lambda step: typer.echo(f"training: {step}", err=True))
    test_matrix = taste.lightfm.inputs.interactions(test_plays)[1].tocsr()
    scores = score_models(taste, test_matrix)
    if json_out is not None:
        json_out.write_text(json.dumps({"service": SERVICE, "models": {n: s.json() for n, s in scores.items()},
                                        "weights": taste.weights}, indent=2))  # fmt: skip
        typer.echo(f"wrote {json_out}")
    if train is not None:
        return
    catalogue = load_catalogue(music, data_dir)
    space = TrackSpace.build(catalogue, taste, music.artists)
    mood = mood_fit_table(taste, space, music, test_matrix)
    curve = new_listener_curve(taste, test_matrix)
    out.mkdir(parents=True, exist_ok=True)
    plot(scores, mood, curve, out / "evaluation.png")
    (out / "REPORT.md").write_text(report(music, taste, scores, mood, curve, catalogue.report.summary()))
    (out / "evaluation.json").write_text(json.dumps({n: asdict(s) for n, s in scores.items()}, indent=2))
    typer.echo(f"wrote {out / 'REPORT.md'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    app()
