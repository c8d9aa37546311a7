"""The LightFM hybrid inside the taste blend: "more like this" by its artist embeddings."""

from __future__ import annotations

import numpy as np


def test_more_like_this_finds_artists_of_the_same_kind(taste, lastfm):
    model = taste.lightfm
    ids = model.inputs.item_ids
    names = lastfm.artists["name"]
    metallica = int(np.flatnonzero(names.loc[ids].to_numpy() == "Metallica")[0])
    similar = model.similar_items(metallica, 10)
    assert len(similar) == 10 and metallica not in [i for i, _ in similar]
    assert [c for _, c in similar] == sorted((c for _, c in similar), reverse=True)
    genres = {g for i, _ in similar for g in lastfm.artists.loc[ids[i], "genres"]}
    assert genres & {"metal", "thrash metal", "hard rock", "rock", "alternative metal", "nu metal"}
