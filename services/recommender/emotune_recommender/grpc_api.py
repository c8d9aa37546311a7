"""The gRPC service emotune.v1.Recommender (port 50052) over RecommenderCore."""

from __future__ import annotations

import time

import grpc

from emotune.v1 import messages_pb2, recommender_pb2, recommender_pb2_grpc
from emotune_common.sharded import ShardedProducer
from emotune_recommender import metrics
from emotune_recommender.core import BadRequest, NotFound, RecommenderCore
from emotune_recommender.events import SessionMoods


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    """``moods`` and ``out`` given, applied feedback is followed by a fresh set for the session on
    emotune:recommendations (the session's shard), as feedback that comes through the stream is."""

    def __init__(self, core: RecommenderCore, default_k: int = 10, moods: SessionMoods | None = None,
                 out: ShardedProducer | None = None) -> None:  # fmt: skip
        self.core = core
        self.default_k = default_k
        self.moods = moods
        self.out = out

    async def Recommend(self, request: recommender_pb2.RecommendRequest, context) -> messages_pb2.RecommendationSet:
        started = time.perf_counter()
        try:
            r = request
            result = await self.core.recommend(r.user_id, r.session_id, r.mood, r.k or self.default_k, r.policy,
                                               list(r.genres))  # fmt: skip
        except BadRequest as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        metrics.RECOMMEND_SECONDS.observe(time.perf_counter() - started)
        return result

    async def Similar(self, request: recommender_pb2.SimilarRequest, context) -> recommender_pb2.SimilarResponse:
        try:
            items = await self.core.similar(request.artist_id, request.k or self.default_k)
        except NotFound as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        return recommender_pb2.SimilarResponse(items=items)

    async def SearchCatalogue(
        self, request: recommender_pb2.CatalogueQuery, context
    ) -> recommender_pb2.CatalogueMatches:
        try:
            return self.core.search(request.text, min(max(request.limit, 0), 100))
        except BadRequest as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def SetTaste(self, request: recommender_pb2.TasteRequest, context) -> recommender_pb2.TasteReply:
        try:
            return await self.core.set_taste(request.user_id, list(request.genres), list(request.artist_ids))
        except BadRequest as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotFound as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))

    async def Feedback(self, request: messages_pb2.Feedback, context) -> recommender_pb2.FeedbackReply:
        refused = await self.core.feedback([request])
        if refused:
            code = grpc.StatusCode.NOT_FOUND if refused[0].startswith("no ") else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, refused[0])
        metrics.FEEDBACK.labels(messages_pb2.FeedbackAction.Name(request.action)).inc()
        if self.moods is not None and self.out is not None and request.header.session_id:
            user, session = request.header.user_id, request.header.session_id
            await self.moods.load([(user, session)])
            fresh = await self.core.recommend(user, session, self.moods.mood_of(user, session), self.default_k, 0, [])
            await self.out.publish(fresh)
        return recommender_pb2.FeedbackReply(applied=True)
