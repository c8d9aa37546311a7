"""What every service agrees on about a face: its crop size and the seven FER-2013 labels, in the
order of EmotionEvent.probabilities and of the Emotion enum (whose value is the index plus one)."""

from emotune.v1 import messages_pb2

CROP_SIZE = 48
EMOTIONS: tuple[str, ...] = tuple(v.name.lower() for v in messages_pb2.Emotion.DESCRIPTOR.values if v.number)
