from emotune.v1 import messages_pb2 as _messages_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "session_id", "mood", "k", "policy", "genres")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    session_id: str
    mood: _messages_pb2.Emotion
    k: int
    policy: _messages_pb2.Policy
    genres: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., mood: _Optional[_Union[_messages_pb2.Emotion, str]] = ..., k: _Optional[int] = ..., policy: _Optional[_Union[_messages_pb2.Policy, str]] = ..., genres: _Optional[_Iterable[str]] = ...) -> None: ...

class SimilarRequest(_message.Message):
    __slots__ = ("artist_id", "k")
    ARTIST_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    artist_id: str
    k: int
    def __init__(self, artist_id: _Optional[str] = ..., k: _Optional[int] = ...) -> None: ...

class SimilarResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Recommendation]
    def __init__(self, items: _Optional[_Iterable[_Union[_messages_pb2.Recommendation, _Mapping]]] = ...) -> None: ...

class FeedbackReply(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...
