"""A gRPC server with TensorFlow Serving's API (PredictionService, ModelService) for SavedModels.

It reads the same models.config and batching.config as the tensorflow/serving container, so the
inference workers cannot tell the two apart; tests and laptops without Docker use this one.
"""
