"""Widgets the screens are built from; they know the model, never a screen."""
