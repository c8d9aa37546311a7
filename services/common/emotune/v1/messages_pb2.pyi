from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Emotion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMOTION_UNSPECIFIED: _ClassVar[Emotion]
    ANGRY: _ClassVar[Emotion]
    DISGUST: _ClassVar[Emotion]
    FEAR: _ClassVar[Emotion]
    HAPPY: _ClassVar[Emotion]
    SAD: _ClassVar[Emotion]
    SURPRISE: _ClassVar[Emotion]
    NEUTRAL: _ClassVar[Emotion]

class Policy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_UNSPECIFIED: _ClassVar[Policy]
    MATCH: _ClassVar[Policy]
    UPLIFT: _ClassVar[Policy]

class FeedbackAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_ACTION_UNSPECIFIED: _ClassVar[FeedbackAction]
    PLAY: _ClassVar[FeedbackAction]
    SKIP: _ClassVar[FeedbackAction]
    LIKE: _ClassVar[FeedbackAction]
    DISLIKE: _ClassVar[FeedbackAction]
    GENRE_CHANGE: _ClassVar[FeedbackAction]
EMOTION_UNSPECIFIED: Emotion
ANGRY: Emotion
DISGUST: Emotion
FEAR: Emotion
HAPPY: Emotion
SAD: Emotion
SURPRISE: Emotion
NEUTRAL: Emotion
POLICY_UNSPECIFIED: Policy
MATCH: Policy
UPLIFT: Policy
FEEDBACK_ACTION_UNSPECIFIED: FeedbackAction
PLAY: FeedbackAction
SKIP: FeedbackAction
LIKE: FeedbackAction
DISLIKE: FeedbackAction
GENRE_CHANGE: FeedbackAction

class Header(_message.Message):
    __slots__ = ("id", "session_id", "user_id", "captured_at_us", "created_at_us")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_US_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    user_id: str
    captured_at_us: int
    created_at_us: int
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., captured_at_us: _Optional[int] = ..., created_at_us: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header", "image", "content_type", "frame_number")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    header: Header
    image: bytes
    content_type: str
    frame_number: int
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., image: _Optional[bytes] = ..., content_type: _Optional[str] = ..., frame_number: _Optional[int] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class FaceCrop(_message.Message):
    __slots__ = ("header", "pixels", "width", "height", "box", "frame_number", "detector", "source")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    header: Header
    pixels: bytes
    width: int
    height: int
    box: BoundingBox
    frame_number: int
    detector: str
    source: str
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., pixels: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., frame_number: _Optional[int] = ..., detector: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class EmotionEvent(_message.Message):
    __slots__ = ("header", "crop_id", "probabilities", "label", "confidence", "model_name", "model_version", "box", "frame_number")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CROP_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    header: Header
    crop_id: str
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    label: Emotion
    confidence: float
    model_name: str
    model_version: int
    box: BoundingBox
    frame_number: int
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., crop_id: _Optional[str] = ..., probabilities: _Optional[_Iterable[float]] = ..., label: _Optional[_Union[Emotion, str]] = ..., confidence: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., frame_number: _Optional[int] = ...) -> None: ...

class MoodChange(_message.Message):
    __slots__ = ("header", "mood", "previous_mood", "smoothed", "confidence", "valence", "arousal")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_MOOD_FIELD_NUMBER: _ClassVar[int]
    SMOOTHED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    header: Header
    mood: Emotion
    previous_mood: Emotion
    smoothed: _containers.RepeatedScalarFieldContainer[float]
    confidence: float
    valence: float
    arousal: float
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., mood: _Optional[_Union[Emotion, str]] = ..., previous_mood: _Optional[_Union[Emotion, str]] = ..., smoothed: _Optional[_Iterable[float]] = ..., confidence: _Optional[float] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("spotify_id", "name", "spotify_url", "preview_url", "album_art_url")
    SPOTIFY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPOTIFY_URL_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    ALBUM_ART_URL_FIELD_NUMBER: _ClassVar[int]
    spotify_id: str
    name: str
    spotify_url: str
    preview_url: str
    album_art_url: str
    def __init__(self, spotify_id: _Optional[str] = ..., name: _Optional[str] = ..., spotify_url: _Optional[str] = ..., preview_url: _Optional[str] = ..., album_art_url: _Optional[str] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("artist_id", "artist_name", "score", "taste_score", "mood_fit", "reason", "genres", "tracks", "spotify_url", "track_id", "title", "mood_tag", "valence", "energy", "embed_url", "artist_spotify_url", "lift", "lift_plays", "lifted", "duration_ms", "popularity")
    ARTIST_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIST_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TASTE_SCORE_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    SPOTIFY_URL_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MOOD_TAG_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    EMBED_URL_FIELD_NUMBER: _ClassVar[int]
    ARTIST_SPOTIFY_URL_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    LIFT_PLAYS_FIELD_NUMBER: _ClassVar[int]
    LIFTED_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_FIELD_NUMBER: _ClassVar[int]
    artist_id: str
    artist_name: str
    score: float
    taste_score: float
    mood_fit: float
    reason: str
    genres: _containers.RepeatedScalarFieldContainer[str]
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    spotify_url: str
    track_id: str
    title: str
    mood_tag: str
    valence: float
    energy: float
    embed_url: str
    artist_spotify_url: str
    lift: float
    lift_plays: int
    lifted: bool
    duration_ms: int
    popularity: int
    def __init__(self, artist_id: _Optional[str] = ..., artist_name: _Optional[str] = ..., score: _Optional[float] = ..., taste_score: _Optional[float] = ..., mood_fit: _Optional[float] = ..., reason: _Optional[str] = ..., genres: _Optional[_Iterable[str]] = ..., tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., spotify_url: _Optional[str] = ..., track_id: _Optional[str] = ..., title: _Optional[str] = ..., mood_tag: _Optional[str] = ..., valence: _Optional[float] = ..., energy: _Optional[float] = ..., embed_url: _Optional[str] = ..., artist_spotify_url: _Optional[str] = ..., lift: _Optional[float] = ..., lift_plays: _Optional[int] = ..., lifted: _Optional[bool] = ..., duration_ms: _Optional[int] = ..., popularity: _Optional[int] = ...) -> None: ...

class RecommendationSet(_message.Message):
    __slots__ = ("header", "mood", "policy", "items", "model_version")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    header: Header
    mood: Emotion
    policy: Policy
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., mood: _Optional[_Union[Emotion, str]] = ..., policy: _Optional[_Union[Policy, str]] = ..., items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("header", "action", "artist_id", "track_id", "mood", "genre", "started_at_us")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARTIST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_US_FIELD_NUMBER: _ClassVar[int]
    header: Header
    action: FeedbackAction
    artist_id: str
    track_id: str
    mood: Emotion
    genre: str
    started_at_us: int
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., action: _Optional[_Union[FeedbackAction, str]] = ..., artist_id: _Optional[str] = ..., track_id: _Optional[str] = ..., mood: _Optional[_Union[Emotion, str]] = ..., genre: _Optional[str] = ..., started_at_us: _Optional[int] = ...) -> None: ...
