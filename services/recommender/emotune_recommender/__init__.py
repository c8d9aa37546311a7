"""emotune recommender: mood and taste into ranked artists and their tracks."""
