"""The bottom layer: names, errors and secrets every other package shares. It imports
nothing of ours, so the media plane and the control plane can both stand on it."""
