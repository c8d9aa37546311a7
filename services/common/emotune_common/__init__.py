"""emotune's shared library: settings, Redis stream client, protobuf codecs, metrics, health."""
