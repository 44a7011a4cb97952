"""Workstation side of edgefer: datasets, splits, models, training and evaluation."""
