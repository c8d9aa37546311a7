"""Stream names of DESIGN.md."""

FRAMES = "emotune:frames"
FACES = "emotune:faces"
EMOTIONS = "emotune:emotions"
RECOMMENDATIONS = "emotune:recommendations"
FEEDBACK = "emotune:feedback"


def dead_letter_stream(stream: str) -> str:
    """Where entries of ``stream`` go after too many deliveries: ``emotune:dlq:<stream>``."""
    return f"emotune:dlq:{stream}"


def stats_key(stream: str) -> str:
    """Hash of counters about ``stream`` kept in Redis (trimmed, dropped), shared by all producers."""
    return f"emotune:stats:{stream}"
