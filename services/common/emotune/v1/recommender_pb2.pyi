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

class CatalogueQuery(_message.Message):
    __slots__ = ("text", "limit")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    text: str
    limit: int
    def __init__(self, text: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class CatalogueArtist(_message.Message):
    __slots__ = ("artist_id", "name", "genres", "tracks")
    ARTIST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    artist_id: str
    name: str
    genres: _containers.RepeatedScalarFieldContainer[str]
    tracks: int
    def __init__(self, artist_id: _Optional[str] = ..., name: _Optional[str] = ..., genres: _Optional[_Iterable[str]] = ..., tracks: _Optional[int] = ...) -> None: ...

class CatalogueGenre(_message.Message):
    __slots__ = ("name", "tracks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tracks: int
    def __init__(self, name: _Optional[str] = ..., tracks: _Optional[int] = ...) -> None: ...

class CatalogueMatches(_message.Message):
    __slots__ = ("artists", "genres")
    ARTISTS_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    artists: _containers.RepeatedCompositeFieldContainer[CatalogueArtist]
    genres: _containers.RepeatedCompositeFieldContainer[CatalogueGenre]
    def __init__(self, artists: _Optional[_Iterable[_Union[CatalogueArtist, _Mapping]]] = ..., genres: _Optional[_Iterable[_Union[CatalogueGenre, _Mapping]]] = ...) -> None: ...

class TasteRequest(_message.Message):
    __slots__ = ("user_id", "genres", "artist_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    ARTIST_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    genres: _containers.RepeatedScalarFieldContainer[str]
    artist_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., genres: _Optional[_Iterable[str]] = ..., artist_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TasteReply(_message.Message):
    __slots__ = ("genres", "artist_ids")
    GENRES_FIELD_NUMBER: _ClassVar[int]
    ARTIST_IDS_FIELD_NUMBER: _ClassVar[int]
    genres: _containers.RepeatedScalarFieldContainer[str]
    artist_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, genres: _Optional[_Iterable[str]] = ..., artist_ids: _Optional[_Iterable[str]] = ...) -> None: ...
