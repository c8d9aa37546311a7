"""emotune inference: workers in the consumer group ``inference`` that score face crops with the CNN."""
