"""The gRPC service emotune.v1.Recommender (port 50052) over RecommenderCore."""

from __future__ import annotations

import time

import grpc

from emotune.v1 import messages_pb2, recommender_pb2, recommender_pb2_grpc
from emotune_recommender import metrics
from emotune_recommender.core import BadRequest, RecommenderCore, UnknownArtist


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    def __init__(self, core: RecommenderCore, default_k: int = 10) -> None:
        self.core = core
        self.default_k = default_k

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
        except UnknownArtist as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        return recommender_pb2.SimilarResponse(items=items)

    async def Feedback(self, request: messages_pb2.Feedback, context) -> recommender_pb2.FeedbackReply:
        refused = await self.core.feedback([request])
        if refused:
            code = grpc.StatusCode.NOT_FOUND if "no artist" in refused[0] else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, refused[0])
        metrics.FEEDBACK.labels(messages_pb2.FeedbackAction.Name(request.action)).inc()
        return recommender_pb2.FeedbackReply(applied=True)
