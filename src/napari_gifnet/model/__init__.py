"""The network and its weights; imports torch and nothing of the package above it."""
